/**
 * What the gateway learns from an answer passing through: the engine's `usage` (prompt, completion and
 * cached tokens) and finish reason, from a whole JSON body or from Server-Sent Events read on the side of
 * a stream as its bytes go by (the bytes themselves go to the client unchanged).
 */
import { estimateTokens } from './prompt_estimate';

export interface AnswerUsage {
  readonly promptTokens: number | undefined;
  readonly completionTokens: number | undefined;
  readonly cachedTokens: number | undefined;
  readonly finishReason: string | undefined;
  /** Output characters seen (for an estimate when the engine reports no usage). */
  readonly outputChars: number;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

class UsageReader {
  promptTokens: number | undefined;
  completionTokens: number | undefined;
  cachedTokens: number | undefined;
  finishReason: string | undefined;
  outputChars = 0;

  /** One OpenAI object: a whole answer or a stream chunk. */
  read(json: unknown): void {
    if (!isObject(json)) return;
    const usage = json.usage;
    if (isObject(usage)) {
      this.promptTokens = count(usage.prompt_tokens) ?? this.promptTokens;
      this.completionTokens = count(usage.completion_tokens) ?? this.completionTokens;
      const details = usage.prompt_tokens_details;
      if (isObject(details)) this.cachedTokens = count(details.cached_tokens) ?? this.cachedTokens;
    }
    const choices = json.choices;
    if (!Array.isArray(choices)) return;
    for (const choice of choices) {
      if (!isObject(choice)) continue;
      if (typeof choice.finish_reason === 'string') this.finishReason = choice.finish_reason;
      const text = choice.text ?? (isObject(choice.message) ? choice.message.content : undefined) ?? (isObject(choice.delta) ? choice.delta.content : undefined);
      if (typeof text === 'string') this.outputChars += text.length;
    }
  }

  result(): AnswerUsage {
    return { promptTokens: this.promptTokens, completionTokens: this.completionTokens, cachedTokens: this.cachedTokens, finishReason: this.finishReason, outputChars: this.outputChars };
  }
}

/** The usage of a whole (non-streamed) answer body; nothing when it is not OpenAI JSON. */
export function usageOfBody(body: Buffer): AnswerUsage {
  const reader = new UsageReader();
  try {
    reader.read(JSON.parse(body.toString('utf8')));
  } catch {
    // Not JSON: nothing to learn, the client gets it as it is.
  }
  return reader.result();
}

/** Reads `data:` events of a stream as its chunks go by; keeps only an unfinished last line. */
export class StreamUsage {
  private readonly reader = new UsageReader();
  private pending = '';
  private readonly decoder = new TextDecoder();

  push(chunk: Uint8Array): void {
    const lines = (this.pending + this.decoder.decode(chunk, { stream: true })).split('\n');
    this.pending = lines.pop() ?? '';
    for (const line of lines) this.line(line);
  }

  result(): AnswerUsage {
    if (this.pending !== '') this.line(this.pending);
    this.pending = '';
    return this.reader.result();
  }

  private line(line: string): void {
    if (!line.startsWith('data:')) return;
    const data = line.slice('data:'.length).trim();
    if (data === '' || data === '[DONE]') return;
    try {
      this.reader.read(JSON.parse(data));
    } catch {
      // An event that is not JSON: passed on, not read.
    }
  }
}

/** Completion tokens: the engine's count, else estimated from the output's characters. */
export function completionTokensOf(usage: AnswerUsage): number {
  return usage.completionTokens ?? estimateTokens(usage.outputChars);
}
