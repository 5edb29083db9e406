/**
 * A fake engine for routing tests: the policy sees only EngineView. It prefills at 10k tokens/s (uncached
 * tokens only), caches the block hashes put in `cached`, and has `free` KV blocks; a test sets its waiting
 * calls, running calls (`outstanding`) and the optional views (places, predictions) as it needs them.
 */
import type { CallInfo, EngineView, WaitingInfo } from '../../lib/policy/types';

export interface FakeEngine extends EngineView {
  places?: number;
  capacityBlocks?: number;
  admissionWaitS?: (call: CallInfo | undefined, nowS: number) => number;
  displacementS?: (call: CallInfo) => number;
  arrivalsPerS?: (nowS: number) => number;
  heldPlaceDelayS?: (call: CallInfo, nowS: number) => number;
  departureGainS?: (call: CallInfo) => number;
  waiting: WaitingInfo[];
  cached: Set<bigint>;
  free: number;
  outstanding: number;
}

/** `free`: KV blocks free; `capacityBlocks`: reported when given (a simulator's engine), absent otherwise (a gateway's). */
export function fakeEngine(id: number, options: { free?: number; capacityBlocks?: number } = {}): FakeEngine {
  const e: FakeEngine = {
    id,
    blockSize: 16,
    ...(options.capacityBlocks === undefined ? {} : { capacityBlocks: options.capacityBlocks }),
    waiting: [],
    cached: new Set(),
    free: options.free ?? 10_000,
    outstanding: 0,
    outstandingCalls: () => e.outstanding + e.waiting.length,
    queuedTokens: () => e.waiting.reduce((n, w) => n + w.call.promptTokens, 0),
    cachedPrefixBlocks: (hashes) => {
      let i = 0;
      while (i < hashes.length && e.cached.has(hashes[i])) i++;
      return i;
    },
    waitingCalls: () => e.waiting,
    freeBlocks: () => e.free,
    prefillEstimateS: (prompt, cached) => (prompt - cached) / 10_000,
  };
  return e;
}
