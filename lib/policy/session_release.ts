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
