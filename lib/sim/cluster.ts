/**
 * The discrete-event loop over a cluster of engines.
 *
 * Events, in time order (ties in the order they were posted, so a run is deterministic):
 * - a task's arrival: its first call arrives;
 * - a call's arrival: its predecessor's end plus the tool or user gap after it (tool time is simulated
 *   time: nothing runs for the task in between);
 * - an engine's step end: one iteration, or a run of decode iterations advanced in bulk (engine.ts).
 * A call is routed on arrival by the bundle's routing policy and queued at that engine; when it ends,
 * its task's next call is posted. Engines interrupt a bulk decode run when a call arrives, so arrivals
 * are never delayed by bulk stepping.
 */
import { ROUTING } from '../constants';
import { SagaError } from '../errors';
import { KvCache } from '../kv/kv_cache';
import type { BackendName } from '../native';
import type { CallInfo, PolicyBundle } from '../policy/types';
import type { Workload } from '../workloads/types';
import type { CostModel } from './cost_model';
import { Engine, type EngineConfig, type EngineStats, Request } from './engine';

export interface ClusterConfig {
  /** Engines (each one vLLM instance on `tp` GPUs). */
  readonly engines: number;
  readonly engine: EngineConfig;
  readonly cost: CostModel;
  /** Block core backend (default cpu: the reference; results are the same on cuda). */
  readonly backend?: BackendName;
}

/** What happened to one task. */
export interface TaskRecord {
  readonly index: number;
  readonly id: string;
  readonly tenant: string;
  readonly kind: string;
  readonly arrivalS: number;
  /** End of its last call's output (NaN if the run stopped before). */
  endS: number;
  calls: number;
  callsFinished: number;
  promptTokens: number;
  cachedTokens: number;
  outputTokens: number;
  preemptions: number;
}

/** One call's timeline (kept when `recordCalls` is set). */
export interface CallRecord {
  readonly taskIndex: number;
  readonly callIndex: number;
  readonly engineId: number;
  readonly arrivalS: number;
  readonly admittedS: number;
  readonly firstTokenS: number;
  readonly finishS: number;
  readonly promptTokens: number;
  readonly cachedTokens: number;
  readonly outputTokens: number;
  readonly preemptions: number;
}

export interface EngineRecord extends EngineStats {
  readonly id: number;
  readonly capacityBlocks: number;
}

export interface ClusterResult {
  readonly tasks: TaskRecord[];
  readonly engines: EngineRecord[];
  readonly calls?: CallRecord[];
  /** Simulated seconds from 0 to the last call's end. */
  readonly makespanS: number;
  readonly callsFinished: number;
  /** Events processed (arrivals and step ends, stale ones included). */
  readonly events: number;
  /** Calls moved by work stealing. */
  readonly steals: number;
}

export interface ClusterOptions {
  /** Keep every call's timeline (memory grows with the calls). */
  readonly recordCalls?: boolean;
  /** Called now and then with finished and total tasks. */
  readonly onProgress?: (finishedTasks: number, totalTasks: number, nowS: number) => void;
}

const EV_CALL = 0;
const EV_STEP = 1;
const EV_STEAL = 2;

/** A binary min-heap of events keyed by (time, posting order). */
class EventQueue {
  private time: Float64Array = new Float64Array(1024);
  private order: Float64Array = new Float64Array(1024);
  private kind: Uint8Array = new Uint8Array(1024);
  private a: Int32Array = new Int32Array(1024);
  private b: Int32Array = new Int32Array(1024);
  private n = 0;
  private posted = 0;

  get size(): number {
    return this.n;
  }

  topTime(): number {
    return this.n > 0 ? this.time[0] : Infinity;
  }

  private grow(): void {
    const size = this.time.length * 2;
    const t = new Float64Array(size);
    t.set(this.time);
    const o = new Float64Array(size);
    o.set(this.order);
    const k = new Uint8Array(size);
    k.set(this.kind);
    const a = new Int32Array(size);
    a.set(this.a);
    const b = new Int32Array(size);
    b.set(this.b);
    this.time = t;
    this.order = o;
    this.kind = k;
    this.a = a;
    this.b = b;
  }

  private less(i: number, j: number): boolean {
    return this.time[i] < this.time[j] || (this.time[i] === this.time[j] && this.order[i] < this.order[j]);
  }

  private swap(i: number, j: number): void {
    let x: number = this.time[i];
    this.time[i] = this.time[j];
    this.time[j] = x;
    x = this.order[i];
    this.order[i] = this.order[j];
    this.order[j] = x;
    x = this.kind[i];
    this.kind[i] = this.kind[j];
    this.kind[j] = x;
    x = this.a[i];
    this.a[i] = this.a[j];
    this.a[j] = x;
    x = this.b[i];
    this.b[i] = this.b[j];
    this.b[j] = x;
  }

  push(time: number, kind: number, a: number, b: number): void {
    if (this.n === this.time.length) this.grow();
    let i = this.n++;
    this.time[i] = time;
    this.order[i] = this.posted++;
    this.kind[i] = kind;
    this.a[i] = a;
    this.b[i] = b;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Removes the top event into `out` ([time, kind, a, b]). */
  pop(out: Float64Array): void {
    out[0] = this.time[0];
    out[1] = this.kind[0];
    out[2] = this.a[0];
    out[3] = this.b[0];
    const last = --this.n;
    if (last > 0) {
      this.swap(0, last);
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < last && this.less(l, m)) m = l;
        if (r < last && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
  }
}

export class Cluster {
  readonly engines: Engine[] = [];
  private readonly workload: Workload;
  private readonly bundle: PolicyBundle;
  private readonly options: ClusterOptions;
  private readonly events = new EventQueue();
  private readonly tasks: TaskRecord[];
  private readonly calls: CallRecord[] | undefined;
  /** Task indices in arrival order. */
  private readonly arrivalOrder: Int32Array;
  private requestOrder = 0;
  /** Per task, the block-id buffer of its last finished call (reused by its next call). */
  private readonly buffers: (Int32Array | undefined)[] = [];
  private callsFinished = 0;
  private tasksFinished = 0;
  private lastFinishS = 0;
  private eventCount = 0;
  private stealTicking = false;
  private steals = 0;

  constructor(workload: Workload, config: ClusterConfig, bundle: PolicyBundle, options: ClusterOptions = {}) {
    this.workload = workload;
    this.bundle = bundle;
    this.options = options;
    const bs = config.engine.blockSize;
    if (workload.blockSize !== bs) {
      throw new SagaError(`workload blocks are ${workload.blockSize} tokens, engines use ${bs}`, 'ERR_SAGA_BAD_ARGUMENT');
    }
    if (!Number.isInteger(config.engines) || config.engines < 1) {
      throw new SagaError(`a cluster needs at least one engine, got ${String(config.engines)}`, 'ERR_SAGA_BAD_ARGUMENT');
    }
    // A call must fit an engine on its own (vLLM rejects requests over max_model_len).
    const capacity = config.engine.capacityBlocks;
    workload.tasks.forEach((task) => {
      task.calls.forEach((call, c) => {
        const blocks = Math.ceil((Math.max(1, call.promptTokens) + Math.max(1, call.outputTokens) - 1) / bs);
        if (blocks > capacity) {
          throw new SagaError(
            `task ${task.id} call ${c} needs ${blocks} KV blocks (${call.promptTokens} prompt + ${call.outputTokens} output tokens) but an engine holds ${capacity}`,
            'ERR_SAGA_BAD_ARGUMENT',
          );
        }
      });
    });
    const hooks = {
      scheduleStepEnd: (engineId: number, timeS: number, version: number) => this.events.push(timeS, EV_STEP, engineId, version),
      onAdmit: (req: Request, nowS: number) => this.bundle.observe?.({ type: 'call-admit', call: req.call, engineId: req.engineId, cachedTokens: req.cachedTokens, nowS }),
      onFinish: (req: Request, nowS: number) => this.onFinish(req, nowS),
    };
    for (let e = 0; e < config.engines; e++) {
      const kv = new KvCache({ deviceCapacity: capacity, backend: config.backend ?? 'cpu' });
      bundle.eviction.attach?.(e, kv);
      this.engines.push(new Engine(e, kv, config.engine, config.cost, bundle.queue, bundle.eviction, hooks));
    }
    this.tasks = workload.tasks.map((task, index) => ({
      index,
      id: task.id,
      tenant: task.tenant,
      kind: task.kind,
      arrivalS: task.arrivalS,
      endS: task.calls.length === 0 ? task.arrivalS : NaN,
      calls: task.calls.length,
      callsFinished: 0,
      promptTokens: 0,
      cachedTokens: 0,
      outputTokens: 0,
      preemptions: 0,
    }));
    this.calls = options.recordCalls ? [] : undefined;
    const order = Int32Array.from(workload.tasks.keys());
    order.sort((x, y) => workload.tasks[x].arrivalS - workload.tasks[y].arrivalS || x - y);
    this.arrivalOrder = order;
  }

  /** Runs to the end of the last call. */
  run(): ClusterResult {
    const tasks = this.workload.tasks;
    const total = tasks.length;
    const ev = new Float64Array(4);
    let next = 0;
    const progressEvery = Math.max(1, Math.floor(total / 200));
    let reported = -1;
    for (;;) {
      const taskTime = next < total ? tasks[this.arrivalOrder[next]].arrivalS : Infinity;
      const eventTime = this.events.topTime();
      if (taskTime === Infinity && eventTime === Infinity) break;
      this.eventCount++;
      if (taskTime <= eventTime) {
        const t = this.arrivalOrder[next++];
        if (tasks[t].calls.length === 0) {
          this.tasksFinished++;
          continue;
        }
        this.arrive(t, 0, taskTime);
      } else {
        this.events.pop(ev);
        const now = ev[0];
        if (ev[1] === EV_CALL) this.arrive(ev[2], ev[3], now);
        else if (ev[1] === EV_STEP) this.engines[ev[2]].stepEnded(now, ev[3]);
        else this.stealTick(now);
      }
      if (this.options.onProgress !== undefined && this.tasksFinished !== reported && this.tasksFinished % progressEvery === 0) {
        reported = this.tasksFinished;
        this.options.onProgress(this.tasksFinished, total, Math.max(taskTime === Infinity ? 0 : taskTime, this.lastFinishS));
      }
    }
    for (const engine of this.engines) engine.settle(this.lastFinishS);
    for (const task of this.tasks) {
      if (task.callsFinished !== task.calls) throw new SagaError(`task ${task.id} finished ${task.callsFinished} of ${task.calls} calls`, 'ERR_SAGA_INTERNAL');
    }
    this.options.onProgress?.(this.tasksFinished, total, this.lastFinishS);
    return {
      tasks: this.tasks,
      engines: this.engines.map((e) => ({ id: e.id, capacityBlocks: e.kv.deviceCapacity, ...e.stats })),
      calls: this.calls,
      makespanS: this.lastFinishS,
      callsFinished: this.callsFinished,
      events: this.eventCount,
      steals: this.steals,
    };
  }

  private arrive(taskIndex: number, callIndex: number, nowS: number): void {
    const task = this.workload.tasks[taskIndex];
    const spec = task.calls[callIndex];
    const call: CallInfo = {
      taskIndex,
      callIndex,
      session: taskIndex,
      tenant: task.tenant,
      kind: task.kind,
      arrivalS: nowS,
      promptTokens: spec.promptTokens,
      outputTokens: spec.outputTokens,
      blockHashes: spec.blockHashes,
    };
    const req = new Request(call, task, this.requestOrder++, this.workload.blockSize, this.buffers[taskIndex]);
    this.buffers[taskIndex] = undefined;
    const engineId = this.bundle.routing.route(call, this.engines, nowS);
    if (!Number.isInteger(engineId) || engineId < 0 || engineId >= this.engines.length) {
      throw new SagaError(`routing policy ${this.bundle.routing.name} chose engine ${String(engineId)} of ${this.engines.length}`, 'ERR_SAGA_INTERNAL');
    }
    this.bundle.observe?.({ type: 'call-arrive', call, engineId, nowS });
    this.engines[engineId].enqueue(req, nowS);
    if (this.bundle.routing.steal !== undefined && !this.stealTicking) {
      this.stealTicking = true;
      this.events.push(nowS + ROUTING.stealIntervalS, EV_STEAL, 0, 0);
    }
  }

  /**
   * Work stealing: every engine with an empty queue may take a call waiting elsewhere, as the routing
   * policy decides. Ticks run while calls are outstanding anywhere, and stop when the cluster drains.
   */
  private stealTick(nowS: number): void {
    const steal = this.bundle.routing.steal;
    if (steal === undefined) return;
    let outstanding = 0;
    for (const engine of this.engines) outstanding += engine.outstandingCalls();
    if (outstanding === 0) {
      this.stealTicking = false;
      return;
    }
    for (const thief of this.engines) {
      if (thief.waitingCalls().length > 0) continue;
      const choice = steal.call(this.bundle.routing, thief, this.engines, nowS);
      if (choice === undefined) continue;
      const from = this.engines[choice.from];
      if (from === undefined || from === thief) throw new SagaError(`routing policy ${this.bundle.routing.name} stole from engine ${String(choice.from)}`, 'ERR_SAGA_INTERNAL');
      const req = from.takeWaiting(choice.call);
      if (req === undefined) throw new SagaError(`routing policy ${this.bundle.routing.name} stole a call not waiting on engine ${choice.from}`, 'ERR_SAGA_INTERNAL');
      this.steals++;
      thief.enqueue(req, nowS);
    }
    this.events.push(nowS + ROUTING.stealIntervalS, EV_STEAL, 0, 0);
  }

  private onFinish(req: Request, nowS: number): void {
    const { taskIndex, callIndex } = req.call;
    const record = this.tasks[taskIndex];
    if (record.callsFinished !== callIndex) {
      throw new SagaError(`call ${callIndex} of task ${record.id} finished out of turn`, 'ERR_SAGA_INTERNAL');
    }
    record.callsFinished++;
    record.promptTokens += req.promptTokens;
    record.cachedTokens += req.cachedTokens;
    record.outputTokens += req.outputTokens;
    record.preemptions += req.preemptions;
    this.callsFinished++;
    if (nowS > this.lastFinishS) this.lastFinishS = nowS;
    this.calls?.push({
      taskIndex,
      callIndex,
      engineId: req.engineId,
      arrivalS: req.call.arrivalS,
      admittedS: req.admittedS,
      firstTokenS: req.firstTokenS,
      finishS: nowS,
      promptTokens: req.promptTokens,
      cachedTokens: req.cachedTokens,
      outputTokens: req.outputTokens,
      preemptions: req.preemptions,
    });
    const task = this.workload.tasks[taskIndex];
    const last = callIndex + 1 >= task.calls.length;
    const spec = task.calls[callIndex];
    this.bundle.observe?.({
      type: 'call-finish',
      call: req.call,
      engineId: req.engineId,
      nowS,
      lastCall: last,
      ...(spec.stop === undefined ? {} : { stop: spec.stop }),
      ...(spec.toolKind === undefined ? {} : { toolKind: spec.toolKind }),
    });
    if (!last) this.buffers[taskIndex] = req.blockIds;
    if (last) {
      record.endS = nowS;
      this.tasksFinished++;
    } else {
      this.events.push(nowS + Math.max(0, task.calls[callIndex].gapAfterS), EV_CALL, taskIndex, callIndex + 1);
    }
  }
}
