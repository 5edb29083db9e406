/**
 * The request stream a replay walks: every call of a Workload as one request, in timestamp order.
 *
 * A request's time is its task's arrivalS plus the call's traceOffsetS (for a workload without trace
 * offsets, e.g. a generator's: the arrival plus the gaps of the calls before it, service time ignored).
 * Order: ascending time; ties keep the workload's order (task order, then call order), so a Mooncake
 * file's requests with equal timestamps stay in file order. A request reads its blocks head first:
 * the call's blockHashes, then its partialBlockHash where the trace hashed one.
 */
import type { Call, Task, Workload } from '../workloads/types';
import { HashInterner } from './intern';

export class ReplayStream {
  readonly workload: Workload;
  /** Requests, in replay order: task number (index into workload.tasks) and call number. */
  readonly taskOf: Int32Array;
  readonly callOf: Int32Array;
  /** Seconds from the workload's start. */
  readonly timeS: Float64Array;
  /** Request i's block reads are reads [readStart[i], readStart[i+1]) of the flat read sequence. */
  readonly readStart: Float64Array;
  /** The largest number of blocks one request reads. */
  readonly maxBlocks: number;
  private dense?: { readIds: Int32Array; unique: number };

  constructor(workload: Workload) {
    this.workload = workload;
    const refs: { task: number; call: number; time: number }[] = [];
    workload.tasks.forEach((task: Task, t: number) => {
      let clock = task.arrivalS;
      task.calls.forEach((call: Call, c: number) => {
        const time = call.traceOffsetS !== undefined ? task.arrivalS + call.traceOffsetS : clock;
        refs.push({ task: t, call: c, time });
        clock = time + call.gapAfterS;
      });
    });
    refs.sort((a, b) => a.time - b.time || a.task - b.task || a.call - b.call);
    const n = refs.length;
    this.taskOf = new Int32Array(n);
    this.callOf = new Int32Array(n);
    this.timeS = new Float64Array(n);
    this.readStart = new Float64Array(n + 1);
    let reads = 0;
    let maxBlocks = 0;
    for (let i = 0; i < n; i++) {
      const r = refs[i];
      this.taskOf[i] = r.task;
      this.callOf[i] = r.call;
      this.timeS[i] = r.time;
      this.readStart[i] = reads;
      const blocks = ReplayStream.blocksOf(workload.tasks[r.task].calls[r.call]);
      reads += blocks;
      if (blocks > maxBlocks) maxBlocks = blocks;
    }
    this.readStart[n] = reads;
    this.maxBlocks = maxBlocks;
  }

  static blocksOf(call: Call): number {
    return call.blockHashes.length + (call.partialBlockHash === undefined ? 0 : 1);
  }

  get requests(): number {
    return this.taskOf.length;
  }

  /** Block reads of the whole stream. */
  get blockReads(): number {
    return this.readStart[this.requests];
  }

  call(i: number): Call {
    return this.workload.tasks[this.taskOf[i]].calls[this.callOf[i]];
  }

  task(i: number): Task {
    return this.workload.tasks[this.taskOf[i]];
  }

  /** Copies request i's block hashes, head first, into out (room for maxBlocks); returns how many. */
  readHashes(i: number, out: BigUint64Array): number {
    const call = this.call(i);
    out.set(call.blockHashes);
    if (call.partialBlockHash === undefined) return call.blockHashes.length;
    out[call.blockHashes.length] = call.partialBlockHash;
    return call.blockHashes.length + 1;
  }

  /** Distinct blocks read over the whole stream. */
  get uniqueBlocks(): number {
    return this.denseReads().unique;
  }

  /**
   * Every read's block as a dense number (equal number = same block), in stream order. The whole
   * future: only an offline oracle may see it.
   */
  readIds(): Int32Array {
    return this.denseReads().readIds;
  }

  private denseReads(): { readIds: Int32Array; unique: number } {
    if (this.dense) return this.dense;
    const readIds = new Int32Array(this.blockReads);
    const interner = new HashInterner(Math.min(this.blockReads, 1 << 16));
    const scratch = new BigUint64Array(this.maxBlocks);
    for (let i = 0; i < this.requests; i++) {
      const n = this.readHashes(i, scratch);
      interner.internAll(scratch.subarray(0, n), readIds.subarray(this.readStart[i], this.readStart[i] + n));
    }
    this.dense = { readIds, unique: interner.size };
    return this.dense;
  }
}
