/**
 * Runs a Workload's agent programs against a live engine in real time, the way agents would: each task
 * starts at its arrival, sends its calls one after another (the next only after the previous answered
 * and its tool gap elapsed), and its completion time is measured from arrival to the last answer.
 *
 * Prompts are text the engine tokenizes one token per workload token: a block's tokens are words
 * " a" .. " z" drawn from the block's prefix-chained hash, so calls that share blocks share their text
 * (and an engine's cached prefix), and calls that diverge diverge in text. The model's own output is not
 * fed back: the workload's next prompt already holds what the agent appended.
 */
import { GOLDEN_GAMMA, MASK64 } from '../workloads/hashing';
import type { Call, Task, Workload } from '../workloads/types';

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
/** Bits of a hash consumed per token before the hash is re-mixed (26 letters < 2^5). */
const BITS_PER_TOKEN = 5;

/** splitmix64's finaliser: a fresh 64-bit value from a hash and a counter. */
function mix(h: bigint, counter: number): bigint {
  let z = (h + BigInt(counter + 1) * GOLDEN_GAMMA) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

function words(seed: bigint, count: number, out: string[]): void {
  let bits = 0n;
  let left = 0;
  let round = 0;
  for (let i = 0; i < count; i++) {
    if (left < BITS_PER_TOKEN) {
      bits = mix(seed, round++);
      left = 64;
    }
    out.push(` ${LETTERS[Number(bits % 26n)]}`);
    bits >>= BigInt(BITS_PER_TOKEN);
    left -= BITS_PER_TOKEN;
  }
}

/**
 * Tokens an engine prompt has beyond the workload call's: the BOS the engine prepends, and a lone
 * SentencePiece space that llama.cpp's tokenizer makes of the leading space of promptText's first word
 * (measured: promptText of 50 tokens tokenizes to 51).
 */
export const PROMPT_EXTRA_TOKENS = 2;

/** The prompt text of `call` (task `taskIndex`, call `callIndex`): one word per token. */
export function promptText(call: Call, blockSize: number, taskIndex: number, callIndex: number): string {
  const out: string[] = [];
  for (const h of call.blockHashes) words(h, blockSize, out);
  const tail = call.promptTokens - call.blockHashes.length * blockSize;
  if (tail > 0) words(mix(BigInt(taskIndex) << 20n, callIndex), tail, out);
  return out.join('');
}

export interface AgentCall {
  readonly session: string;
  readonly tenant: string;
  readonly kind: string;
  readonly prompt: string;
  readonly maxTokens: number;
  /** The program's last call: a client may tell the gateway its program ended once it is answered. */
  readonly lastCall?: boolean;
}

export interface AgentCallResult {
  readonly promptTokens: number;
  readonly cachedTokens: number;
  readonly completionTokens: number;
}

export interface AgentRunResult {
  /** Seconds from each task's arrival to its last answer, in workload order. */
  readonly taskTimesS: number[];
  readonly promptTokens: number;
  readonly cachedTokens: number;
  readonly completionTokens: number;
  /** Seconds from the first arrival to the last answer. */
  readonly wallS: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Replays `workload` through `send` in real time; rejects on the first failed call. */
export async function runAgentWorkload(workload: Workload, send: (call: AgentCall) => Promise<AgentCallResult>): Promise<AgentRunResult> {
  const start = performance.now();
  const totals = { promptTokens: 0, cachedTokens: 0, completionTokens: 0 };
  const runTask = async (task: Task, taskIndex: number): Promise<number> => {
    await sleep(task.arrivalS * 1000 - (performance.now() - start));
    const arrived = performance.now();
    for (let c = 0; c < task.calls.length; c++) {
      const call = task.calls[c];
      const r = await send({
        session: task.id,
        tenant: task.tenant,
        kind: task.kind,
        prompt: promptText(call, workload.blockSize, taskIndex, c),
        maxTokens: call.outputTokens,
        lastCall: c === task.calls.length - 1,
      });
      totals.promptTokens += r.promptTokens;
      totals.cachedTokens += r.cachedTokens;
      totals.completionTokens += r.completionTokens;
      if (call.gapAfterS > 0) await sleep(call.gapAfterS * 1000);
    }
    return (performance.now() - arrived) / 1000;
  };
  const taskTimesS = await Promise.all(workload.tasks.map(runTask));
  return { taskTimesS, ...totals, wallS: (performance.now() - start) / 1000 };
}
