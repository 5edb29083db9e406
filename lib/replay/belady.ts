/**
 * Bélády's MIN over a replay stream, the offline oracle: evict the block whose next read is farthest in
 * the future. The only policy that sees the future; its numbers are reported as a bound, never as a
 * policy one can run. (The simulator's `belady` estimates next uses in a closed loop,
 * lib/policy/belady.ts; a replay has no timing, so here the future is exact.)
 *
 * Next reads come from one backward pass over the stream's reads (each read's block as a dense
 * number): nextRead[j] = index of the next read of read j's block, or -1 when it is never read again.
 * A block released by read j takes key = -nextRead[j] (its next read farthest = smallest key = evicted
 * first) or -Infinity when never read again, so blocks never read again go first, deeper ones first
 * among them (the core's tie rule). Read indices are unique, so no other ties arise.
 */
import type { EvictionPolicy, ReleaseInfo } from '../policy/types';
import type { ReplayStream } from './stream';

/** nextRead[j]: the index of the next read of the block of read j, or -1 (a backward pass). */
export function nextReads(readIds: Int32Array, uniqueBlocks: number): Int32Array {
  const next = new Int32Array(readIds.length);
  const seen = new Int32Array(uniqueBlocks).fill(-1);
  for (let j = readIds.length - 1; j >= 0; j--) {
    const b = readIds[j];
    next[j] = seen[b];
    seen[b] = j;
  }
  return next;
}

export class ReplayBeladyEviction implements EvictionPolicy {
  readonly name = 'belady';
  readonly oracle = true;
  private readonly next: Int32Array;
  private readonly readStart: Float64Array;
  /** Stream index of (task, call): requestOf[callBase[task] + call]. */
  private readonly callBase: Int32Array;
  private readonly requestOf: Int32Array;

  /** Built from the whole stream: the oracle's privilege. */
  constructor(stream: ReplayStream) {
    if (stream.blockReads > 0x7fffffff) throw new RangeError('belady: more than 2^31 block reads');
    this.next = nextReads(stream.readIds(), stream.uniqueBlocks);
    this.readStart = stream.readStart;
    const tasks = stream.workload.tasks;
    this.callBase = new Int32Array(tasks.length + 1);
    for (let t = 0; t < tasks.length; t++) this.callBase[t + 1] = this.callBase[t] + tasks[t].calls.length;
    this.requestOf = new Int32Array(stream.requests);
    for (let i = 0; i < stream.requests; i++) this.requestOf[this.callBase[stream.taskOf[i]] + stream.callOf[i]] = i;
  }

  releaseKeys(info: ReleaseInfo, out: Float64Array): void {
    const request = this.requestOf[this.callBase[info.call.taskIndex] + info.call.callIndex];
    const first = this.readStart[request];
    for (let i = 0; i < info.count; i++) {
      const j = this.next[first + info.positions[i]];
      out[i] = j < 0 ? -Infinity : -j;
    }
  }
}
