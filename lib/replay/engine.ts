/**
 * Block-level replay: one eviction policy over one request stream on the native block core (KvCache),
 * with no timing model. The exact semantics (they reproduce the independent implementation behind the
 * issue's target numbers; README "Traces: bring your own"):
 *
 * 1. Requests are served one at a time in stream order (timestamp order, stable; ./stream.ts).
 * 2. A request reads every one of its blocks: a read hits when that block is cached at that moment,
 *    whether or not the blocks before it are (per block, not only the cached prefix; `prefixHitBlocks`
 *    also counts the prefix-only hits a prefix-caching engine could use). Hit rate = hit block reads /
 *    block reads.
 * 3. Then every block of the request is cached: hits are re-used, misses allocated, and all are
 *    released with the keys the policy gives (tail first).
 * 4. Then, while more than `capacity` blocks are cached, the core's eviction order removes them
 *    (ascending key; ties deeper position first, then lower id) - the request's own blocks included.
 *    So a policy may decline to keep a block it has just read: Bélády's MIN keeps, out of everything
 *    cached plus the request's blocks, the `capacity` blocks read soonest again, which is what the
 *    target numbers need (making room before caching, so that the request's own blocks always stay,
 *    gives a lower "oracle": 0.2399 against 0.2464 on the conversation trace at 1%). For LRU the
 *    request's blocks are the newest, so only a request with more blocks than `capacity` loses any: its
 *    tail, keeping its first `capacity` blocks (the only part a prefix cache could use).
 *
 * 5. A policy sees at the release what a server knows when a call ends: its output's length, its stop
 *    reason, and, where the trace gives the call's api_time, when it ended (`endS` = start + api_time;
 *    a gap to the session's next call runs from there). Nothing later: no gap, no next call.
 *    `lru` keys by the order of releases, the order of starts here (by ends, it missed more on the
 *    Claude Code sessions: 2.29x Bélády's misses at 5% against 1.89x; docs/aeg.md).
 *
 * The pool holds capacity + the largest request's blocks, so step 3 never evicts; step 4 trims.
 */
import { KvCache, Tier } from '../kv/kv_cache';
import type { BackendName } from '../native';
import type { CallInfo, EvictionPolicy, ReleaseInfo } from '../policy/types';
import type { ReplayStream } from './stream';

/** Blocks per lookup after a miss (doubling while they are all cached). */
const LOOKUP_WINDOW = 8;

export interface PolicyOutcome {
  policy: string;
  /** True for an oracle: the number is a bound. */
  bound: boolean;
  blockReads: number;
  hitBlocks: number;
  missedBlocks: number;
  /** hitBlocks / blockReads (0 for a stream without blocks). */
  hitRate: number;
  /** Hits within each request's cached prefix (what a prefix-caching engine re-uses). */
  prefixHitBlocks: number;
}

export interface EngineOptions {
  /** Block core backend (default: the one lib/native.ts chose). */
  backend?: BackendName;
  /** Called every `progressEvery` requests (default 1000) and at the end. */
  onProgress?: (done: number, total: number) => void;
  progressEvery?: number;
}

/** Replays `stream` under `policy` with `capacityBlocks` blocks of cache. */
export function replayPolicy(stream: ReplayStream, policy: EvictionPolicy, capacityBlocks: number, options: EngineOptions = {}): PolicyOutcome {
  const maxBlocks = Math.max(1, stream.maxBlocks);
  const cache = new KvCache({
    deviceCapacity: capacityBlocks + maxBlocks,
    ...(options.backend === undefined ? {} : { backend: options.backend }),
  });
  // Buffers owned here and reused: the policy sees the request through them, never the workload.
  const hashes = new BigUint64Array(maxBlocks);
  const ids = new Int32Array(maxBlocks);
  const keys = new Float64Array(maxBlocks);
  const hitIds = new Int32Array(maxBlocks);
  const missHashes = new BigUint64Array(maxBlocks);
  const missSessions = new Int32Array(maxBlocks);
  const missPositions = new Int32Array(maxBlocks);
  const missIds = new Int32Array(maxBlocks);
  const missAt = new Int32Array(maxBlocks);
  const releaseIds = new Int32Array(maxBlocks);
  const releasePositions = new Int32Array(maxBlocks);
  const victims = new Int32Array(maxBlocks);
  const every = options.progressEvery ?? 1000;
  const blockSize = stream.workload.blockSize;
  policy.attach?.(0, cache);

  let hitBlocks = 0;
  let prefixHitBlocks = 0;
  let cached = 0;
  const total = stream.requests;
  for (let i = 0; i < total; i++) {
    const n = stream.readHashes(i, hashes);
    const session = stream.taskOf[i];
    // Reads: the cached prefix by one lookup, then cached runs by lookups from each position after a
    // miss. A lookup costs its window's length (the core prefetches every hash it is given), so after a
    // miss the window starts small and doubles while it comes back fully cached.
    let hitCount = 0;
    let missCount = 0;
    let pos = 0;
    let window = n;
    let prefixRun = 0;
    while (pos < n) {
      const end = Math.min(n, pos + window);
      const run = cache.lookup(hashes.subarray(pos, end), ids.subarray(pos));
      if (pos === 0) prefixRun = run;
      for (let p = pos; p < pos + run; p++) {
        hitIds[hitCount++] = ids[p];
      }
      pos += run;
      if (pos === end) {
        window *= 2;
        continue;
      }
      window = LOOKUP_WINDOW;
      if (pos < n) {
        missHashes[missCount] = hashes[pos];
        missSessions[missCount] = session;
        missPositions[missCount] = pos;
        missAt[missCount++] = pos;
        pos++;
      }
    }
    hitBlocks += hitCount;
    prefixHitBlocks += prefixRun;
    // Cache every block: hold the hits, allocate the misses (free blocks suffice: see the header).
    if (hitCount > 0) cache.acquire(hitIds.subarray(0, hitCount));
    if (missCount > 0) {
      cache.allocate(missHashes.subarray(0, missCount), missSessions.subarray(0, missCount), missPositions.subarray(0, missCount), missIds);
      for (let m = 0; m < missCount; m++) ids[missAt[m]] = missIds[m];
    }
    const call = stream.call(i);
    const task = stream.task(i);
    const nowS = stream.timeS[i];
    // The call is served at its start; it ended (what a server knows at its end, as it knows the output)
    // its trace's api_time later, where the trace says.
    const ended = call.traceApiS !== undefined && call.traceApiS > 0 ? { endS: nowS + call.traceApiS } : {};
    // What the policy sees: the request in hand (hashes in a buffer owned here, not the workload's), and
    // nothing that tells the future (no gap after the call, no later call).
    const info: CallInfo = {
      taskIndex: stream.taskOf[i],
      callIndex: stream.callOf[i],
      session,
      tenant: task.tenant,
      kind: task.kind,
      arrivalS: nowS,
      promptTokens: call.promptTokens,
      outputTokens: call.outputTokens,
      blockHashes: hashes.subarray(0, n),
    };
    policy.observe?.({ type: 'call-arrive', call: info, engineId: 0, nowS });
    policy.observe?.({ type: 'call-admit', call: info, engineId: 0, cachedTokens: Math.min(call.promptTokens, prefixRun * blockSize), nowS });
    if (n > 0) {
      for (let p = 0; p < n; p++) {
        releaseIds[p] = ids[n - 1 - p];
        releasePositions[p] = n - 1 - p;
      }
      const release: ReleaseInfo = {
        call: info,
        engineId: 0,
        nowS,
        sequence: i,
        reason: 'finish',
        ...(call.stop === undefined ? {} : { stop: call.stop }),
        ...(call.toolKind === undefined ? {} : { toolKind: call.toolKind }),
        ...ended,
        count: n,
        positions: releasePositions.subarray(0, n),
        ids: releaseIds.subarray(0, n),
        committed: () => true,
        blockHash: (position: number) => hashes[position],
      };
      const out = keys.subarray(0, n);
      policy.releaseKeys(release, out);
      cache.release(releaseIds.subarray(0, n), out);
      cached += missCount;
      // Trim to capacity in the policy's eviction order.
      if (cached > capacityBlocks) {
        const excess = cached - capacityBlocks;
        const got = cache.victims(Tier.Device, victims.subarray(0, excess));
        cache.evict(victims.subarray(0, got));
        cached -= got;
      }
    }
    policy.observe?.({
      type: 'call-finish',
      call: info,
      engineId: 0,
      nowS,
      lastCall: stream.callOf[i] === task.calls.length - 1,
      ...(call.stop === undefined ? {} : { stop: call.stop }),
      ...(call.toolKind === undefined ? {} : { toolKind: call.toolKind }),
      ...ended,
    });
    if (options.onProgress && ((i + 1) % every === 0 || i + 1 === total)) options.onProgress(i + 1, total);
  }
  const blockReads = stream.blockReads;
  return {
    policy: policy.name,
    bound: policy.oracle === true,
    blockReads,
    hitBlocks,
    missedBlocks: blockReads - hitBlocks,
    hitRate: blockReads === 0 ? 0 : hitBlocks / blockReads,
    prefixHitBlocks,
  };
}
