/**
 * The peers (lib/policy/continuum.ts, lib/policy/kvflow.ts): their mechanisms on hand-made call
 * sequences against the block core, their causality, and both running end to end in `saga replay` and
 * `saga simulate`.
 */
import { describe, expect, it } from 'vitest';
import { Tier, type KvCache } from '../lib/kv/kv_cache';
import { createPolicy, evictionPolicyNames, policyNames } from '../lib/policy/index';
import { ContinuumEviction, PIN_KEY_BASE, bestTtl } from '../lib/policy/continuum';
import { KvflowEviction } from '../lib/policy/kvflow';
import type { CallInfo, EvictionPolicy, ReleaseInfo } from '../lib/policy/types';
import { ReplayStream, createReplayPolicy, replayPolicy, runReplay } from '../lib/replay';
import { resolveClusterSpec, simulate } from '../lib/sim/simulate';
import { generateWorkload } from '../lib/workloads/generators';
import type { Workload } from '../lib/workloads/types';
import { cpuCache } from './support/fixtures';

/** Serves calls one at a time on one cache, as the replay does, and remembers which session owns each block. */
class Driver {
  readonly cache: KvCache = cpuCache({ deviceCapacity: 512 });
  readonly owner = new Map<number, number>();
  private seq = 0;
  constructor(readonly policy: EvictionPolicy) {
    policy.attach?.(0, this.cache);
  }

  /** Session `session`'s call `callIndex` at `nowS`: blocks `first..first+count-1` of its own chain. */
  call(session: number, callIndex: number, nowS: number, count: number, o: { stop?: string; toolKind?: string; last?: boolean; tokensPerBlock?: number; kind?: string; endS?: number } = {}): void {
    const hashes = BigUint64Array.from({ length: count }, (_, k) => BigInt(session * 100_000 + k + 1));
    const ids = new Int32Array(count);
    const hit = this.cache.lookup(hashes, ids);
    if (hit > 0) this.cache.acquire(ids.subarray(0, hit));
    if (hit < count) {
      const fresh = hashes.subarray(hit);
      const out = new Int32Array(fresh.length);
      this.cache.allocate(fresh, new Int32Array(fresh.length).fill(session), Int32Array.from(fresh, (_, i) => hit + i), out);
      ids.set(out, hit);
      for (const id of out) this.owner.set(id, session);
    }
    const call: CallInfo = {
      taskIndex: session,
      callIndex,
      session,
      tenant: 't',
      kind: o.kind ?? 'k',
      arrivalS: nowS,
      promptTokens: count * (o.tokensPerBlock ?? 16),
      outputTokens: 1,
      blockHashes: hashes,
    };
    this.policy.observe?.({ type: 'call-arrive', call, engineId: 0, nowS });
    this.policy.observe?.({ type: 'call-admit', call, engineId: 0, cachedTokens: hit * 16, nowS });
    const releaseIds = ids.slice().reverse();
    const positions = Int32Array.from({ length: count }, (_, i) => count - 1 - i);
    const info: ReleaseInfo = {
      call,
      engineId: 0,
      nowS,
      sequence: this.seq++,
      reason: 'finish',
      ...(o.stop === undefined ? {} : { stop: o.stop }),
      ...(o.toolKind === undefined ? {} : { toolKind: o.toolKind }),
      ...(o.endS === undefined ? {} : { endS: o.endS }),
      count,
      positions,
      ids: releaseIds,
      committed: () => true,
      blockHash: (p) => hashes[p],
    };
    const keys = new Float64Array(count);
    this.policy.releaseKeys(info, keys);
    this.cache.release(releaseIds, keys);
    this.policy.observe?.({ type: 'call-finish', call, engineId: 0, nowS, lastCall: o.last ?? false, ...(o.stop === undefined ? {} : { stop: o.stop }), ...(o.endS === undefined ? {} : { endS: o.endS }) });
  }

  /** Sessions in the order eviction would take their blocks (each listed at its first block). */
  victimSessions(): number[] {
    const out = new Int32Array(512);
    const n = this.cache.victims(Tier.Device, out);
    const order: number[] = [];
    for (const id of out.subarray(0, n)) {
      const s = this.owner.get(id) as number;
      if (order[order.length - 1] !== s) order.push(s);
    }
    return order;
  }
}

describe('continuum', () => {
  it('picks the TTL that maximizes F(tau) x benefit - tau over the observed durations', () => {
    expect(bestTtl([], 10)).toBe(0);
    expect(bestTtl([1, 2, 3, 50], 10)).toBe(3); // 0.75 x 10 - 3 = 4.5 beats 0.5 x 10 - 2 = 3 and 2.5 - 1
    expect(bestTtl([5, 6, 7], 4)).toBe(0); // every duration costs more than the whole benefit
    expect(bestTtl([0, 0, 8], 4)).toBe(0);
  });

  it('keeps a pinned session through a burst of other sessions during its TTL, and lets LRU have it after', () => {
    const policy = new ContinuumEviction();
    const d = new Driver(policy);
    // 20 blocks of 16,000 tokens: Reload = 10 s, the cold-start rule gives tau = ln(10) = 2.3 s.
    d.call(1, 0, 0, 20, { stop: 'tool_use', toolKind: 'bash', tokensPerBlock: 16_000 });
    expect(policy.pinsMade).toBe(1);
    d.call(2, 0, 0.5, 5, { stop: 'end_turn', last: true });
    d.call(3, 0, 1.0, 5, { stop: 'end_turn' });
    // During the TTL the pinned session goes last, after sessions released later.
    expect(d.victimSessions()).toEqual([2, 3, 1]);
    expect(policy.isPinned(1)).toBe(true);
    // After the TTL (2.3 s), the next event returns it to LRU order as if freed at expiry: before session 4.
    d.call(4, 0, 3.0, 5, { stop: 'end_turn' });
    expect(policy.isPinned(1)).toBe(false);
    expect(d.victimSessions()).toEqual([2, 3, 1, 4]);
  });

  it("counts the TTL from the call's end where a replay knows it later than the release (the tool starts there)", () => {
    const policy = new ContinuumEviction();
    const d = new Driver(policy);
    // Released at its start (0 s), ended at 5 s: pinned until 5 + 2.3 s, not 2.3 s.
    d.call(1, 0, 0, 20, { stop: 'tool_use', toolKind: 'bash', tokensPerBlock: 16_000, endS: 5 });
    d.call(2, 0, 3.0, 5, { stop: 'end_turn' });
    expect(policy.isPinned(1)).toBe(true);
    d.call(3, 0, 7.0, 5, { stop: 'end_turn' });
    expect(policy.isPinned(1)).toBe(true);
    d.call(4, 0, 7.5, 5, { stop: 'end_turn' });
    expect(policy.isPinned(1)).toBe(false);
  });

  it('a returning call within the TTL keeps the pin until admitted; a short context is not pinned', () => {
    const policy = new ContinuumEviction();
    const d = new Driver(policy);
    d.call(1, 0, 0, 20, { stop: 'tool_use', tokensPerBlock: 16_000 });
    d.call(1, 1, 1.0, 21, { stop: 'tool_use', tokensPerBlock: 16_000 });
    expect(policy.pinsMade).toBe(2);
    d.call(2, 0, 2.0, 4, { stop: 'tool_use' }); // 64 tokens: Reload well under the prior's 1 s mean
    expect(policy.pinsMade).toBe(2);
    const keys = d.cache.snapshot();
    expect(keys).toBeDefined();
    // The program ends: its pin goes with it.
    d.call(1, 2, 2.5, 22, { stop: 'end_turn', last: true, tokensPerBlock: 16_000 });
    expect(policy.isPinned(1)).toBe(false);
    expect(PIN_KEY_BASE).toBeGreaterThan(1e12);
  });
});

describe('kvflow', () => {
  it('evicts the session farthest from execution first, ended programs before all', () => {
    const policy = new KvflowEviction();
    const d = new Driver(policy);
    // Learn the graph: kind `fast` returns at once, kind `slow` after many other invocations.
    let t = 0;
    for (let r = 0; r < 3; r++) {
      d.call(10 + r, 0, t++, 2, { kind: 'slow', stop: 'tool_use', toolKind: 'build' });
      d.call(20 + r, 0, t++, 2, { kind: 'fast', stop: 'tool_use', toolKind: 'ls' });
      d.call(20 + r, 1, t++, 3, { kind: 'fast', stop: 'end_turn', last: true });
      for (let k = 0; k < 6; k++) d.call(100 + 10 * r + k, 0, t++, 1, { kind: 'other', stop: 'end_turn', last: true });
      d.call(10 + r, 1, t++, 3, { kind: 'slow', stop: 'end_turn', last: true });
    }
    expect(policy.stepsFrom(KvflowEviction.node('slow', 'tool_use', 'build'))).toBeGreaterThan(policy.stepsFrom(KvflowEviction.node('fast', 'tool_use', 'ls')));
    // Now: F (fast) released first, S (slow) after; LRU would evict F first, KVFlow evicts S first.
    const d2 = new Driver(policy);
    d2.call(50, 0, t++, 4, { kind: 'fast', stop: 'tool_use', toolKind: 'ls' });
    d2.call(60, 0, t++, 4, { kind: 'slow', stop: 'tool_use', toolKind: 'build' });
    d2.call(70, 0, t++, 4, { kind: 'other', stop: 'end_turn', last: true });
    expect(d2.victimSessions()).toEqual([70, 60, 50]);
    // S's next call arrives: its blocks are about to be used (steps-to-execution 0).
    d2.call(60, 1, t++, 5, { kind: 'slow', stop: 'tool_use', toolKind: 'build' });
    expect(d2.victimSessions()[0]).toBe(70);
  });
});

/** A small coding-agent workload with trace times (for the replay). */
function smallWorkload(seed: number): Workload {
  const w = generateWorkload('swebench', { tasks: 12, ratePerS: 0.5, seed });
  for (const task of w.tasks) {
    let offset = 0;
    for (const call of task.calls) {
      call.traceOffsetS = offset;
      offset += 2 + call.gapAfterS;
    }
  }
  return w;
}

describe('causality', () => {
  it('keys up to time t do not change when everything after t does', () => {
    const cut = 60;
    const a = smallWorkload(3);
    const b = smallWorkload(3);
    // Perturb every call issued after the cut: other prompts, other gaps, other tools.
    for (const task of b.tasks) {
      for (const call of task.calls) {
        if (task.arrivalS + (call.traceOffsetS ?? 0) > cut) {
          call.blockHashes = call.blockHashes.map((h) => h ^ 0xabcdefn);
          call.toolKind = 'perturbed';
          call.gapAfterS *= 3;
        }
      }
    }
    for (const name of ['continuum', 'kvflow']) {
      const record = (w: Workload): string[] => {
        const stream = new ReplayStream(w);
        const inner = createReplayPolicy(name, stream);
        const keys: string[] = [];
        const wrapped: EvictionPolicy = {
          name,
          attach: (e, c) => inner.attach?.(e, c),
          observe: (ev) => inner.observe?.(ev),
          releaseKeys: (info, out) => {
            inner.releaseKeys(info, out);
            if (info.nowS <= cut) keys.push(`${info.call.session}:${info.call.callIndex}:${Array.from(out.subarray(0, info.count)).join(',')}`);
          },
        };
        replayPolicy(stream, wrapped, 200);
        return keys;
      };
      const ka = record(a);
      expect(ka.length).toBeGreaterThan(5);
      expect(record(b)).toEqual(ka);
    }
  });
});

describe('end to end', () => {
  it('both are registered as bundles and as eviction policies', () => {
    expect(policyNames()).toEqual(expect.arrayContaining(['continuum', 'kvflow']));
    expect(evictionPolicyNames()).toEqual(expect.arrayContaining(['continuum', 'kvflow']));
  });

  it('run in saga replay', () => {
    const report = runReplay(smallWorkload(5), { policies: ['lru', 'continuum', 'kvflow'], capacity: { percent: 20 } });
    expect(report.results.map((r) => r.policy)).toEqual(['lru', 'continuum', 'kvflow']);
    for (const r of report.results) {
      expect(r.blockReads).toBeGreaterThan(0);
      expect(r.hitRate).toBeGreaterThan(0);
      expect(r.missRatioVsBelady).toBeGreaterThanOrEqual(1);
    }
  });

  it('run in saga simulate, every task finishing', () => {
    const workload = generateWorkload('mixed', { tasks: 16, ratePerS: 1, seed: 2 });
    const spec = resolveClusterSpec({ model: 'llama-3.1-8b', gpu: 'h100', gpus: 2 });
    for (const name of ['continuum', 'kvflow']) {
      const result = simulate(workload, spec, createPolicy(name, { workload }));
      expect(result.policy.label).toBe(name);
      expect(result.tasks.every((t) => Number.isFinite(t.endS))).toBe(true);
    }
  });
});
