/**
 * Per-engine state eviction policies share: each engine's cache (from `attach`), for re-keying a
 * session's blocks, at once or gathered into one batched call, and a release counter that orders LRU
 * keys as vLLM's free queue does.
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

  cache(engineId: number): KvCache | undefined {
    return this.caches[engineId];
  }

  /** Re-keys the session's blocks at chain position >= minPosition on the engine (if it attached a cache). */
  rekeySession(engineId: number, session: number, key: number, minPosition: number): void {
    const cache = this.caches[engineId];
    if (cache === undefined) return;
    cache.setSessionKeys(Int32Array.of(session), Float64Array.of(key), Int32Array.of(minPosition));
  }
}

/** Session re-keys gathered for one KvCache.setSessionKeys call (many sessions, one N-API crossing). */
export class SessionRekeys {
  private sessions: number[] = [];
  private keys: number[] = [];
  private from: number[] = [];

  /** Every block of `session` at chain position >= minPosition is to take `key`. */
  add(session: number, key: number, minPosition: number): void {
    this.sessions.push(session);
    this.keys.push(key);
    this.from.push(minPosition);
  }

  /** Applies the gathered re-keys to `cache` (if any) and forgets them. */
  applyTo(cache: KvCache | undefined): void {
    if (cache !== undefined && this.sessions.length > 0) {
      cache.setSessionKeys(Int32Array.from(this.sessions), Float64Array.from(this.keys), Int32Array.from(this.from));
    }
    this.sessions = [];
    this.keys = [];
    this.from = [];
  }
}
