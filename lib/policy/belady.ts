/**
 * `belady`: the oracle. Bélády's MIN evicts the block whose next use is farthest in the future; with
 * the block core's order (lowest key first) that is key = -(next use time), and a block never used again
 * takes -Infinity. It is constructed with the whole workload (the future in hand), is labelled
 * `belady (bound)` in every output, and is never offered as a policy users can run.
 *
 * A block's next use is the next call that reads it:
 * - the same task's next call, when that call's prompt holds the block (same chained hash at the same
 *   position). The chain makes this the only call of the task that can: a later call that held it would
 *   extend a prompt that holds it.
 * - for the prefix a task shares with other tasks of its group (tasks whose first prompts start with the
 *   same block: a system prompt, a tool schema), the group's next call.
 *
 * The simulation is closed-loop: when a call will arrive depends on when its predecessor ends, which no
 * trace fixes in advance. The oracle uses the time that call would arrive given what is known:
 * - at a call's end its task's next call arrives exactly `gapAfterS` later (known at release time);
 * - a preempted call's blocks are used again as soon as it is re-admitted: next use = now;
 * - the group's next use is now while another task of the group is between calls or running with calls
 *   left (its next call comes after a tool gap of seconds: "soon"), else the next group task's arrival.
 * Hence this is a bound under estimated next-use times, not an exact optimum of the closed loop.
 */
import type { Task, Workload } from '../workloads/types';
import type { EvictionPolicy, PolicyBundle, PolicyEvent, ReleaseInfo } from './types';
import { composeBundle } from './bundle';
import { FcfsQueue, SessionAffinityRouting } from './vllm';

function lcp(a: BigUint64Array, b: BigUint64Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class BeladyEviction implements EvictionPolicy {
  readonly name = 'belady';
  readonly oracle = true;
  private readonly tasks: readonly Task[];
  /** Per task: its group (-1 when it shares no first block with another task) and shared prefix blocks. */
  private readonly group: Int32Array;
  private readonly sharedBlocks: Int32Array;
  /** Per group: the first-call arrival times of its tasks, ascending. */
  private readonly groupArrivals: Float64Array[] = [];
  /** Per group: tasks that have arrived and still have a call to make after the current one. */
  private readonly groupActive: Int32Array;

  constructor(workload: Workload) {
    this.tasks = workload.tasks;
    const n = workload.tasks.length;
    this.group = new Int32Array(n).fill(-1);
    this.sharedBlocks = new Int32Array(n);
    const byFirst = new Map<bigint, number[]>();
    workload.tasks.forEach((task, t) => {
      const first = task.calls[0]?.blockHashes;
      if (first === undefined || first.length === 0) return;
      const members = byFirst.get(first[0]);
      if (members === undefined) byFirst.set(first[0], [t]);
      else members.push(t);
    });
    let groups = 0;
    for (const members of byFirst.values()) {
      if (members.length < 2) continue;
      const g = groups++;
      const rep = workload.tasks[members[0]].calls[0].blockHashes;
      let repShared = 0;
      const arrivals = new Float64Array(members.length);
      members.forEach((t, i) => {
        this.group[t] = g;
        arrivals[i] = workload.tasks[t].arrivalS;
        if (i > 0) {
          const shared = lcp(rep, workload.tasks[t].calls[0].blockHashes);
          this.sharedBlocks[t] = shared;
          repShared = Math.max(repShared, shared);
        }
      });
      this.sharedBlocks[members[0]] = repShared;
      arrivals.sort();
      this.groupArrivals.push(arrivals);
    }
    this.groupActive = new Int32Array(groups);
  }

  /** Keeps the per-group count of tasks with calls still to come. */
  observe(event: PolicyEvent): void {
    if (event.type !== 'call-arrive') return;
    const { taskIndex, callIndex } = event.call;
    const g = this.group[taskIndex];
    if (g < 0) return;
    const calls = this.tasks[taskIndex].calls.length;
    if (calls < 2) return;
    if (callIndex === 0) this.groupActive[g]++;
    if (callIndex === calls - 1) this.groupActive[g]--;
  }

  /** The earliest time another task of `task`'s group reads the shared prefix, from `nowS` on. */
  private groupNextUse(taskIndex: number, nowS: number, selfActive: boolean): number {
    const g = this.group[taskIndex];
    if (g < 0) return Infinity;
    const others = this.groupActive[g] - (selfActive ? 1 : 0);
    if (others > 0) return nowS;
    const arrivals = this.groupArrivals[g];
    let lo = 0;
    let hi = arrivals.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (arrivals[mid] < nowS) lo = mid + 1;
      else hi = mid;
    }
    return lo < arrivals.length ? arrivals[lo] : Infinity;
  }

  releaseKeys(info: ReleaseInfo, out: Float64Array): void {
    const { call, nowS } = info;
    if (info.reason === 'preempt') {
      out.fill(-nowS, 0, info.count);
      return;
    }
    const task = this.tasks[call.taskIndex];
    const next = task.calls[call.callIndex + 1];
    const nextUseOwn = next === undefined ? Infinity : nowS + task.calls[call.callIndex].gapAfterS;
    // Blocks [0, held) are in the next call's prompt. Chained hashes: equal at k means equal at every
    // j < k, so the boundary is found by binary search.
    let held = 0;
    if (next !== undefined) {
      const nextHashes = next.blockHashes;
      let hi = Math.min(nextHashes.length, info.count);
      while (held < hi) {
        const mid = (held + hi + 1) >>> 1;
        if (nextHashes[mid - 1] === info.blockHash(mid - 1)) held = mid;
        else hi = mid - 1;
      }
    }
    const shared = this.sharedBlocks[call.taskIndex];
    const groupUse = shared > 0 ? this.groupNextUse(call.taskIndex, nowS, next !== undefined) : Infinity;
    const positions = info.positions;
    for (let i = 0; i < info.count; i++) {
      if (!info.committed(i)) {
        out[i] = -Infinity;
        continue;
      }
      const k = positions[i];
      let nextUse = k < held ? nextUseOwn : Infinity;
      if (k < shared && groupUse < nextUse) nextUse = groupUse;
      out[i] = -nextUse;
    }
  }
}

export function createBeladyBundle(workload: Workload): PolicyBundle {
  return composeBundle({
    name: 'belady',
    label: 'belady (bound)',
    oracle: true,
    routing: new SessionAffinityRouting(),
    queue: new FcfsQueue(),
    eviction: new BeladyEviction(workload),
  });
}
