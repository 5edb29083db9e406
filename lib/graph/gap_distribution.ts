/**
 * The distribution of gaps (seconds from a call's end to the session's next call) at one step state: a
 * streaming quantile sketch (DDSketch, @datadog/sketches-js: every quantile within a relative accuracy,
 * mergeable, bounded memory), plus what prediction needs on top of quantiles: the conditional remaining
 * gap of a session that has already been away for a while.
 */
import { DDSketch } from '@datadog/sketches-js';
import { AEG } from '../constants';

/** Quantile steps searched when inverting the sketch (its CDF is not exposed). */
const CDF_STEPS = 20;

export class GapDistribution {
  private readonly sketch = new DDSketch({ relativeAccuracy: AEG.sketchRelativeAccuracy });

  add(gapS: number): void {
    // The sketch counts a NaN without storing it (its quantiles then drift): an unknown gap is not recorded.
    if (Number.isNaN(gapS)) return;
    // The sketch takes positive values; a zero gap (the next call at once) counts as a millisecond.
    this.sketch.accept(Math.max(gapS, 1e-3));
  }

  get count(): number {
    return this.sketch.count;
  }

  quantile(q: number): number {
    return this.sketch.getValueAtQuantile(Math.min(1, Math.max(0, q)));
  }

  /** P(gap <= x), by bisection over quantiles (to 2^-CDF_STEPS). */
  cdf(x: number): number {
    if (this.sketch.count === 0) return 0;
    if (x < this.sketch.min) return 0;
    if (x >= this.sketch.max) return 1;
    let lo = 0;
    let hi = 1;
    for (let i = 0; i < CDF_STEPS; i++) {
      const mid = (lo + hi) / 2;
      if (this.sketch.getValueAtQuantile(mid) <= x) lo = mid;
      else hi = mid;
    }
    return lo;
  }

  /**
   * The median of the remaining gap of a session already away for `elapsedS`: the gap's median given
   * gap > elapsed, minus elapsed. Undefined when elapsed is past everything seen (it may never return).
   */
  remainingMedian(elapsedS: number): number | undefined {
    if (elapsedS <= 0) return this.quantile(0.5);
    const f = this.cdf(elapsedS);
    if (f >= 1) return undefined;
    return Math.max(0, this.quantile((1 + f) / 2) - elapsedS);
  }
}
