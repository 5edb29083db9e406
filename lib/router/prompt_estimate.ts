/**
 * What the gateway knows of a prompt without a tokenizer: its text, its length in tokens by estimate, and
 * prefix-chained hashes of its blocks, so that routing can ask which engine holds how much of it.
 *
 * - Text: a completion's `prompt` as given (a non-string prompt as JSON); a chat's `tools` (as JSON, first:
 *   agents send the same tool schema on every call) and then each message as JSON, one per line. Each
 *   message's text depends on that message alone, so a conversation that grows keeps its earlier text as a
 *   prefix, as the engine's own prompt does.
 * - Tokens: ceil(characters / GATEWAY.charsPerToken).
 * - Blocks: the text cut into GATEWAY.blockChars-character blocks (UTF-16 code units) whose hashes chain
 *   (lib/kv's hashTokenBlocks over the code units); a trailing partial block is not hashed. A block is
 *   GATEWAY.blockChars / GATEWAY.charsPerToken tokens by the same estimate.
 */
import { GATEWAY } from '../constants';
import { hashTokenBlocks } from '../kv/token_hash';

export const BLOCK_TOKENS = GATEWAY.blockChars / GATEWAY.charsPerToken;

export interface PromptEstimate {
  readonly promptTokens: number;
  readonly blockHashes: BigUint64Array;
}

/** The prompt text of a chat completion request (`messages`, after a check that it is a non-empty array). */
export function chatPromptText(messages: readonly unknown[], tools: unknown): string {
  const lines = tools === undefined || tools === null ? [] : [JSON.stringify(tools)];
  for (const message of messages) lines.push(JSON.stringify(message));
  return lines.join('\n');
}

/** The prompt text of a completion request. */
export function completionPromptText(prompt: unknown): string {
  return typeof prompt === 'string' ? prompt : JSON.stringify(prompt);
}

/** The block hashes of a prompt shorter than a block: none (shared; nothing writes to it). */
const NO_BLOCKS = new BigUint64Array(0);

export function estimatePrompt(text: string): PromptEstimate {
  if (text.length < GATEWAY.blockChars) return { promptTokens: estimateTokens(text.length), blockHashes: NO_BLOCKS };
  const codes = new Uint32Array(text.length);
  for (let i = 0; i < text.length; i++) codes[i] = text.charCodeAt(i);
  return { promptTokens: estimateTokens(text.length), blockHashes: hashTokenBlocks(codes, GATEWAY.blockChars) };
}

export function estimateTokens(chars: number): number {
  return Math.ceil(chars / GATEWAY.charsPerToken);
}
