/**
 * Engines whose unit of memory is a whole session (`saga engine`'s llama.cpp sequences, and their
 * simulation in lib/sim/sequence_engine.ts) mirror each idle session's context as blocks of a KvCache,
 * so that the eviction policy keys them exactly as it keys a paged engine's blocks.
 */
import type { KvCache } from '../kv/kv_cache';
import type { CallInfo, EvictionPolicy, ReleaseInfo } from './types';

export interface SessionRelease {
  readonly call: CallInfo;
  /** The session's context as block hashes (salted per session: sessions share no KV). */
  readonly hashes: BigUint64Array;
  readonly nowS: number;
  /** The engine's count of releases so far (ReleaseInfo.sequence). */
  readonly sequence: number;
  readonly stop?: string | undefined;
}

/**
 * Allocates the session's blocks and releases them tail first (deepest block first, as the policies
 * and the core expect) with the policy's keys; returns their ids in position order.
 */
export function releaseSessionBlocks(cache: KvCache, eviction: EvictionPolicy, release: SessionRelease): Int32Array {
  const { call, hashes, nowS, sequence, stop } = release;
  const n = hashes.length;
  const ids = new Int32Array(n);
  if (n === 0) return ids;
  const positions = Int32Array.from({ length: n }, (_, i) => i);
  cache.allocate(hashes, new Int32Array(n).fill(call.session), positions, ids);
  const tailFirst = ids.slice().reverse();
  const tailPositions = positions.reverse();
  const keys = new Float64Array(n);
  const info: ReleaseInfo = {
    call,
    engineId: 0,
    nowS,
    sequence,
    reason: 'finish',
    ...(stop === undefined ? {} : { stop }),
    count: n,
    positions: tailPositions,
    ids: tailFirst,
    committed: () => true,
    blockHash: (position) => hashes[position],
  };
  eviction.releaseKeys(info, keys);
  cache.release(tailFirst, keys);
  return ids;
}

/** An idle session that could give its sequence up: where it sits, its first block (-1: none), its size. */
export interface IdleSession {
  readonly slot: number;
  readonly session: number;
  readonly firstBlock: number;
  readonly tokens: number;
}

/** The session a waiting call displaces (slot -1: none may be), its key, and the earliest end of a hold. */
export interface SessionVictim {
  readonly slot: number;
  readonly key: number;
  readonly heldUntilS: number;
}

/**
 * Among idle sessions, the one whose first block has the lowest key (the context the policy would keep
 * least), skipping those the policy holds (`EvictionPolicy.holdUntilS`); a session with no blocks goes
 * first and is never held. The same rule for `saga engine` and its simulation.
 */
export function chooseSessionVictim(
  cache: KvCache,
  eviction: EvictionPolicy,
  idle: readonly IdleSession[],
  nowS: number,
  costs: { restoreS(tokens: number): number; recomputeS(tokens: number): number },
): SessionVictim {
  let slot = -1;
  let key = Infinity;
  let heldUntilS = Infinity;
  if (idle.length === 0) return { slot, key, heldUntilS };
  const keys = cache.snapshot().key;
  for (const s of idle) {
    const k = s.firstBlock < 0 ? -Infinity : keys[s.firstBlock];
    const held =
      s.firstBlock < 0 || eviction.holdUntilS === undefined
        ? 0
        : eviction.holdUntilS({ session: s.session, tokens: s.tokens, key: k, nowS, restoreS: costs.restoreS(s.tokens), recomputeS: costs.recomputeS(s.tokens) });
    if (held > nowS) {
      heldUntilS = Math.min(heldUntilS, held);
      continue;
    }
    if (k < key || slot < 0) {
      slot = s.slot;
      key = k;
    }
  }
  return { slot, key, heldUntilS };
}
