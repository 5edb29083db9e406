/**
 * What the graph knows about one step state (a node): how often a next call followed and how often the
 * program ended there, the gap until the next call, and how much of the previous prompt the next call
 * read again (reuse depth as a share of the previous prompt's blocks).
 */
import { GapDistribution } from './gap_distribution';

export class StepStats {
  continued = 0;
  ended = 0;
  readonly gaps = new GapDistribution();
  reuseSum = 0;
  reuseCount = 0;

  /** Outcomes seen here (next call or end). */
  get evidence(): number {
    return this.continued + this.ended;
  }

  recordNextCall(gapS: number, reuseRatio: number): void {
    this.continued++;
    this.gaps.add(gapS);
    this.reuseSum += reuseRatio;
    this.reuseCount++;
  }

  recordEnd(): void {
    this.ended++;
  }
}
