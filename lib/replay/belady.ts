/**
 * Bélády's MIN, the offline oracle: evict the block whose next read is farthest in the future. The only
 * policy that sees the future; its numbers are reported as a bound, never as a policy one can run.
 *
 * Next reads come from one backward pass over the stream's reads (each read's block as a dense
 * number): nextRead[j] = index of the next read of read j's block, or -1 when it is never read again.
 * A block released by read j takes key = -nextRead[j] (its next read farthest = smallest key = evicted
 * first) or -Infinity when never read again, so blocks never read again go first, deeper ones first
 * among them (the core's tie rule). Read indices are unique, so no other ties arise.
 */
import type { EvictionPolicy, PolicyRequest } from './policy';
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

export class BeladyPolicy implements EvictionPolicy {
  readonly name = 'belady';
  readonly bound = true;
  private readonly next: Int32Array;
  private readonly readStart: Float64Array;

  /** Built from the whole stream: the oracle's privilege. */
  constructor(stream: ReplayStream) {
    if (stream.blockReads > 0x7fffffff) throw new RangeError('belady: more than 2^31 block reads');
    this.next = nextReads(stream.readIds(), stream.uniqueBlocks);
    this.readStart = stream.readStart;
  }

  keys(request: PolicyRequest, out: Float64Array): void {
    const first = this.readStart[request.index];
    for (let p = 0; p < out.length; p++) {
      const j = this.next[first + p];
      out[p] = j < 0 ? -Infinity : -j;
    }
  }
}
