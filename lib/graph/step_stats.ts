/**
 * What the graph knows about one step state (a node): how often a next call followed and how often the
 * program ended there, the gap until the next call, and how much of the previous prompt the next call
 * read again (reuse depth as a share of the previous prompt's blocks).
 */
import { GapDistribution } from './gap_distribution';

/** A next call that reads at least this share of the previous prompt reads all of it (rounding). */
export const FULL_REUSE = 0.999;

export class StepStats {
  continued = 0;
  ended = 0;
  readonly gaps = new GapDistribution();
  reuseSum = 0;
  reuseCount = 0;
  /** Next calls that read the whole previous prompt again (most agents append to their context). */
  fullReuse = 0;

  /** Outcomes seen here (next call or end). */
  get evidence(): number {
    return this.continued + this.ended;
  }

  recordNextCall(gapS: number, reuseRatio: number): void {
    this.continued++;
    this.gaps.add(gapS);
    this.reuseSum += reuseRatio;
    this.reuseCount++;
    if (reuseRatio >= FULL_REUSE) this.fullReuse++;
  }

  /**
   * The reuse a next call will most likely show: all of the context when most next calls read it all
   * (the mean would cut every context's tail because of a rare compaction), else the mean of the ratios.
   */
  typicalReuse(): number {
    if (2 * this.fullReuse >= this.reuseCount) return 1;
    return this.reuseSum / this.reuseCount;
  }

  recordEnd(): void {
    this.ended++;
  }
}
