/**
 * Per-engine state the peers' eviction policies share: each engine's cache (from `attach`), for re-keying
 * a session's blocks, and a release counter that orders LRU keys as vLLM's free queue does.
 */
import type { KvCache } from '../kv/kv_cache';

export class EngineKeys {
  private readonly caches: (KvCache | undefined)[] = [];
  private readonly clock: number[] = [];

  attach(engineId: number, cache: KvCache): void {
    this.caches[engineId] = cache;
  }

  /** The engine's counter now, then advanced: 0, 1, 2, ... */
  tick(engineId: number): number {
    const t = this.clock[engineId] ?? 0;
    this.clock[engineId] = t + 1;
    return t;
  }

  /** Re-keys the session's blocks at chain position >= minPosition on the engine (if it attached a cache). */
  rekeySession(engineId: number, session: number, key: number, minPosition: number): void {
    const cache = this.caches[engineId];
    if (cache === undefined) return;
    cache.setSessionKeys(Int32Array.of(session), Float64Array.of(key), Int32Array.of(minPosition));
  }
}
