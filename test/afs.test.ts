/**
 * Agent Fair Share (lib/policy/afs.ts) and the Autellix peer (lib/policy/autellix.ts) on the simulator:
 * a flooding tenant does not starve a light one, least attained service within a tenant, weights shift
 * service shares, and the engine's dynamic-priority path leaves a static policy's results unchanged.
 */
import { describe, expect, it } from 'vitest';
import { AfsQueue, createAfsBundle } from '../lib/policy/afs';
import { AUTELLIX_DEFAULTS, createAutellixBundle, LocalityAwareRouting, PlasQueue } from '../lib/policy/autellix';
import { createPolicy, policyNames } from '../lib/policy/index';
import type { CallInfo, EngineView, PolicyBundle } from '../lib/policy/types';
import { createVllmBundle, FcfsQueue } from '../lib/policy/vllm';
import { isolatedTaskTimes, resolveClusterSpec, resolveWorkload, simulate, type ClusterSpecInput } from '../lib/sim/simulate';
import type { Task, Workload } from '../lib/workloads/types';

const BS = 16;

/** A call of a program of its own (session = task) with no blocks: for the queue alone. */
function callOf(tenant: string, taskIndex: number, promptTokens: number, outputTokens: number, arrivalS = 0, callIndex = 0): CallInfo {
  return { taskIndex, callIndex, session: taskIndex, tenant, kind: 'test', arrivalS, promptTokens, outputTokens, blockHashes: new BigUint64Array(0) };
}

interface TaskPlan {
  tenant: string;
  arrivalS: number;
  /** [prompt tokens, output tokens, gap after (s)] per call. */
  calls: [number, number, number][];
}

/** A workload whose calls share no blocks (every block hash fresh): queueing alone decides. */
function workload(plans: TaskPlan[]): Workload {
  let next = 1n;
  const tasks: Task[] = plans.map((plan, t) => ({
    id: `t${t}`,
    tenant: plan.tenant,
    kind: 'test',
    arrivalS: plan.arrivalS,
    calls: plan.calls.map(([prompt, output, gap], c) => ({
      blockHashes: BigUint64Array.from({ length: Math.floor(prompt / BS) }, () => next++),
      promptTokens: prompt,
      outputTokens: output,
      gapAfterS: c + 1 < plan.calls.length ? gap : 0,
    })),
  }));
  tasks.sort((a, b) => a.arrivalS - b.arrivalS);
  return { name: 'afs-test', blockSize: BS, tasks };
}

function spec(extra: ClusterSpecInput = {}) {
  return resolveClusterSpec({ model: 'llama-3.1-8b', gpu: 'h100', gpus: 1, ...extra });
}

function meanSlowdown(wl: Workload, policy: string | PolicyBundle, s: ReturnType<typeof spec>, tenant: string): number {
  const result = simulate(wl, s, policy);
  const isolated = isolatedTaskTimes(wl, s);
  let sum = 0;
  let n = 0;
  result.tasks.forEach((t, i) => {
    if (t.tenant !== tenant) return;
    sum += (t.endS - t.arrivalS) / isolated[i];
    n++;
  });
  return sum / n;
}

/** A heavy tenant floods one engine at t=0; a light tenant's short programs arrive while it drains. */
function floodWorkload(): Workload {
  const plans: TaskPlan[] = [];
  for (let i = 0; i < 60; i++) plans.push({ tenant: 'heavy', arrivalS: i * 0.01, calls: [[3000, 300, 0.5], [3200, 300, 0]] });
  for (let i = 0; i < 6; i++) plans.push({ tenant: 'light', arrivalS: 5 + i * 4, calls: [[600, 60, 0.5], [700, 60, 0]] });
  return workload(plans);
}

describe('afs', () => {
  it('keeps a light tenant fast while a heavy one floods the engine; FCFS does not', () => {
    const wl = floodWorkload();
    const s = spec({ maxNumSeqs: 4 });
    const fcfs = meanSlowdown(wl, 'vllm', s, 'light');
    const afs = meanSlowdown(wl, 'afs', s, 'light');
    // The light programs' own work is short: waiting for one of 4 sequence slots is most of afs's 3x.
    expect(fcfs).toBeGreaterThan(20);
    expect(afs).toBeLessThan(4);
    expect(afs * 5).toBeLessThan(fcfs);
  });

  it('orders a short program ahead of a long one of the same tenant (least attained service)', () => {
    // Four long programs are well under way when a one-call program arrives; one request at a time.
    const plans: TaskPlan[] = [];
    for (let i = 0; i < 4; i++) plans.push({ tenant: 'a', arrivalS: i * 0.01, calls: Array.from({ length: 20 }, () => [2000, 200, 0.05] as [number, number, number]) });
    plans.push({ tenant: 'a', arrivalS: 30, calls: [[2000, 200, 0]] });
    const wl = workload(plans);
    const s = spec({ maxNumSeqs: 1 });
    const shortTct = (policy: string): number => {
      const r = simulate(wl, s, policy);
      const t = r.tasks.find((task) => task.calls === 1)!;
      return t.endS - t.arrivalS;
    };
    const isolated = isolatedTaskTimes(wl, s)[wl.tasks.findIndex((t) => t.calls.length === 1)];
    const las = shortTct('afs');
    const fcfs = shortTct('vllm');
    expect(las).toBeLessThan(fcfs);
    expect(las).toBeLessThan(2.5 * isolated); // at most the call in service ahead of it
    expect(fcfs).toBeGreaterThan(3 * isolated); // behind the long programs' waiting calls

    // The same ordering, on the queue itself.
    const q = new AfsQueue();
    const call = (taskIndex: number, callIndex: number, arrivalS: number) => callOf('a', taskIndex, 1000, 100, arrivalS, callIndex);
    q.observe({ type: 'call-arrive', call: call(0, 0, 0), engineId: 0, nowS: 0 });
    q.observe({ type: 'call-admit', call: call(0, 0, 0), engineId: 0, cachedTokens: 0, nowS: 0 });
    q.observe({ type: 'call-finish', call: call(0, 0, 0), engineId: 0, nowS: 1, lastCall: false });
    const longNext = call(0, 1, 1);
    const short = call(1, 0, 2);
    q.observe({ type: 'call-arrive', call: longNext, engineId: 0, nowS: 1 });
    q.observe({ type: 'call-arrive', call: short, engineId: 0, nowS: 2 });
    expect(q.priority(short, 2)).toBe(q.priority(longNext, 2)); // one tenant, one counter
    expect(q.tieBreak(short, 2)).toBeLessThan(q.tieBreak(longNext, 2));
  });

  it("charges prefill-token equivalents when the engines' costs are given: long outputs weigh their decode steps", () => {
    // 'talky' writes long answers to short prompts, 'reader' reads long prompts and answers briefly; each
    // has a second call waiting throughout (both tenants stay backlogged), so the charges alone order them.
        const served = (q: AfsQueue) => {
      const first = [callOf('talky', 0, 1000, 100), callOf('reader', 1, 2000, 5)];
      const next = { talky: callOf('talky', 2, 1000, 100), reader: callOf('reader', 3, 2000, 5) };
      for (const c of [...first, next.talky, next.reader]) q.observe({ type: 'call-arrive', call: c, engineId: 0, nowS: 0 });
      for (const c of first) q.observe({ type: 'call-admit', call: c, engineId: 0, cachedTokens: 0, nowS: 0 });
      for (const c of first) q.observe({ type: 'call-finish', call: c, engineId: 0, nowS: 1, lastCall: false });
      return { talky: q.counter(0, 'talky'), reader: q.counter(0, 'reader'), talkyFirst: q.priority(next.talky, 1) < q.priority(next.reader, 1) };
    };
    expect(served(new AfsQueue())).toEqual({ talky: 1100, reader: 2005, talkyFirst: true });
    // A decode step costs 20 prefill tokens: talky's answers make it the heavier tenant, and reader goes first.
    expect(served(new AfsQueue({ decodePrice: () => 20 }))).toEqual({ talky: 1000 + 100 * 20, reader: 2000 + 5 * 20, talkyFirst: false });
  });

  it('shifts service shares with tenant weights', () => {
    const plans: TaskPlan[] = [];
    for (let i = 0; i < 40; i++) {
      plans.push({ tenant: 'a', arrivalS: 0, calls: [[1600, 100, 0]] });
      plans.push({ tenant: 'b', arrivalS: 0, calls: [[1600, 100, 0]] });
    }
    const wl = workload(plans);
    const s = spec({ maxNumSeqs: 1 });
    const firstAdmitted = (bundle: PolicyBundle): Record<string, number> => {
      const r = simulate(wl, s, bundle, { recordCalls: true });
      const calls = [...(r.calls ?? [])].sort((x, y) => x.admittedS - y.admittedS).slice(0, 40);
      const count: Record<string, number> = { a: 0, b: 0 };
      for (const c of calls) count[wl.tasks[c.taskIndex].tenant]++;
      return count;
    };
    const equal = firstAdmitted(createAfsBundle());
    expect(Math.abs(equal.a - equal.b)).toBeLessThanOrEqual(1);
    const weighted = firstAdmitted(createAfsBundle({ weights: { a: 3 } }));
    expect(weighted.a).toBeGreaterThanOrEqual(29);
    expect(weighted.a).toBeLessThanOrEqual(31);
  });

  it('lifts a newly backlogged tenant to the least backlogged counter (no banked credit)', () => {
    const q = new AfsQueue();
    const mk = (tenant: string, taskIndex: number, arrivalS: number) => callOf(tenant, taskIndex, 5000, 1000, arrivalS);
    for (let i = 0; i < 5; i++) {
      const c = mk('busy', i, i);
      q.observe({ type: 'call-arrive', call: c, engineId: 0, nowS: i });
      q.observe({ type: 'call-admit', call: c, engineId: 0, cachedTokens: 1000, nowS: i });
    }
    expect(q.counter(0, 'busy')).toBe(5 * (5000 - 1000)); // at admission the prefill computed; decode is charged at finish
    const waiting = mk('busy', 9, 10);
    q.observe({ type: 'call-arrive', call: waiting, engineId: 0, nowS: 10 });
    const late = mk('late', 10, 11);
    q.observe({ type: 'call-arrive', call: late, engineId: 0, nowS: 11 });
    expect(q.counter(0, 'late')).toBe(q.counter(0, 'busy'));
    expect(q.maxBackloggedGap).toBe(0);
  });

  it('boosts programs near their SLO only when a predictor says so', () => {
    const q = new AfsQueue();
    const c: CallInfo = { taskIndex: 0, callIndex: 0, session: 0, tenant: 'a', kind: 'test', arrivalS: 0, promptTokens: 100, outputTokens: 10, blockHashes: new BigUint64Array(0) };
    q.observe({ type: 'call-arrive', call: c, engineId: 0, nowS: 0 });
    const plain = q.priority(c, 100);
    q.setRemainingWork(() => 10); // waited 100 s of 110: projected slowdown 11
    expect(q.priority(c, 100)).toBe(plain - q.urgencyBoostTokens);
    q.setRemainingWork(() => undefined);
    expect(q.priority(c, 100)).toBe(plain);
  });

  it("judges each tenant's urgency by its own SLO", () => {
    const q = new AfsQueue({ sloSlowdown: 2, tenantSlos: { strict: 1.5, loose: 20 } });
    const mk = (tenant: string, taskIndex: number) => callOf(tenant, taskIndex, 100, 10);
    const calls = [mk('strict', 0), mk('loose', 1), mk('other', 2)];
    for (const c of calls) q.observe({ type: 'call-arrive', call: c, engineId: 0, nowS: 0 });
    const plain = calls.map((c) => q.priority(c, 3));
    // Waited 3 s of work that takes 2 s alone: projected slowdown 2.5, over 0.75 x 1.5 and 0.75 x 2, under 0.75 x 20.
    q.setRemainingWork(() => 2);
    expect(calls.map((c) => plain[calls.indexOf(c)] - q.priority(c, 3))).toEqual([q.urgencyBoostTokens, 0, q.urgencyBoostTokens]);
  });

  it('preempts the running call of the tenant with the most attained service, newest on ties', () => {
    const q = new AfsQueue({ victim: 'most-attained' });
    const mk = (tenant: string, taskIndex: number) => callOf(tenant, taskIndex, tenant === 'big' ? 9000 : 100, 10);
    const calls = [mk('big', 0), mk('small', 1), mk('big', 2), mk('small', 3)];
    calls[2] = { ...calls[2], promptTokens: 9000 };
    for (const c of calls) {
      q.observe({ type: 'call-arrive', call: c, engineId: 0, nowS: 0 });
      q.observe({ type: 'call-admit', call: c, engineId: 0, cachedTokens: 0, nowS: 0 });
    }
    const running = calls.map((call) => ({ call, admittedS: 0 }));
    expect(q.preemptionVictim(running, 1)).toBe(2);
    expect(new AfsQueue({ victim: 'newest' }).preemptionVictim(running, 1)).toBe(3);
  });
});

describe('dynamic queue path', () => {
  it('leaves a static policy unchanged: FCFS recomputed before every admission gives the same run', () => {
    const wl = resolveWorkload('mixed', { tasks: 40, ratePerS: 0.5, seed: 3 });
    const s = resolveClusterSpec({ gpus: 2, capacityBlocks: 12000 });
    const plain = simulate(wl, s, createVllmBundle());
    const dynamicFcfs = createVllmBundle();
    const fcfs = new FcfsQueue();
    const queue = { name: 'fcfs', dynamic: true, priority: fcfs.priority.bind(fcfs), preemptionVictim: fcfs.preemptionVictim.bind(fcfs) };
    const again = simulate(wl, s, { ...dynamicFcfs, queue });
    expect(plain.engines.reduce((n, e) => n + e.preemptions, 0)).toBeGreaterThan(0); // preempted calls re-queued too
    expect(again.tasks).toEqual(plain.tasks);
    expect(again.engines).toEqual(plain.engines);
  });
});

describe('autellix', () => {
  it('discretises attained service into doubling queues and promotes starved programs to Q1', () => {
    const q = new PlasQueue();
    const base = AUTELLIX_DEFAULTS.baseQuantumS;
    expect(q.queueOf(0)).toBe(0);
    expect(q.queueOf(base * 0.99)).toBe(0);
    expect(q.queueOf(base)).toBe(1);
    expect(q.queueOf(base * 3.9)).toBe(2);
    expect(q.queueOf(1e9)).toBe(AUTELLIX_DEFAULTS.queues - 1);
    const c0: CallInfo = { taskIndex: 0, callIndex: 0, session: 0, tenant: 'a', kind: 'test', arrivalS: 0, promptTokens: 100, outputTokens: 10, blockHashes: new BigUint64Array(0) };
    q.observe({ type: 'call-arrive', call: c0, engineId: 0, nowS: 0 });
    q.observe({ type: 'call-admit', call: c0, engineId: 0, cachedTokens: 0, nowS: 0 });
    q.observe({ type: 'call-finish', call: c0, engineId: 0, nowS: 10, lastCall: false }); // 10 s of service
    const c1 = { ...c0, callIndex: 1, arrivalS: 10 };
    q.observe({ type: 'call-arrive', call: c1, engineId: 0, nowS: 10 });
    expect(q.priority(c1, 10)).toBe(q.queueOf(10));
    expect(q.priority(c1, 10 + 10 * AUTELLIX_DEFAULTS.starvationRatio)).toBe(0);
  });

  it('keeps long prompts on their program engine and balances short ones', () => {
    const routing = new LocalityAwareRouting();
    const load = [0, 0];
    // Only what the locality-aware router reads.
    const engines = [0, 1].map((id) => ({ id, outstandingCalls: () => load[id], queuedTokens: () => 0 }) as unknown as EngineView);
    const call = (callIndex: number, promptTokens: number) => callOf('a', 0, promptTokens, 1, 0, callIndex);
    expect(routing.route(call(0, 5000), engines, 0)).toBe(0);
    load[0] = 5;
    expect(routing.route(call(1, 5000), engines, 0)).toBe(0); // long: stays with its KV
    expect(routing.route(call(2, 1000), engines, 0)).toBe(1); // short: least used
    expect(routing.route(call(3, 5000), engines, 0)).toBe(1); // its KV now lives on 1
  });

  it('runs a workload to the end', () => {
    const wl = resolveWorkload('mixed', { tasks: 30, ratePerS: 0.5, seed: 2 });
    const result = simulate(wl, resolveClusterSpec({ gpus: 2, capacityBlocks: 12000 }), createAutellixBundle());
    expect(result.callsFinished).toBe(wl.tasks.reduce((n, t) => n + t.calls.length, 0));
  });
});

describe('registry', () => {
  it('has afs and autellix', () => {
    expect(policyNames()).toEqual(expect.arrayContaining(['afs', 'autellix']));
    const wl = workload([{ tenant: 'a', arrivalS: 0, calls: [[100, 10, 0]] }]);
    expect(createPolicy('afs', { workload: wl }).queue.name).toBe('afs');
    expect(createPolicy('autellix', { workload: wl }).queue.name).toBe('plas');
  });
});
