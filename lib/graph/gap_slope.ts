/**
 * How a gap grows with the output of the call before it: seconds of gap per output token, learned online.
 *
 * Where a call's end is observed before its output has been written and acted on (a replay without a
 * timing model sees each call end where it starts; an agent whose tool reads a long output runs longer),
 * the gap to the next call grows with the call's output. On the Claude Code development traces the gap's
 * median after a tool call rises from 13 s for outputs of 64-127 tokens to 38 s for 1,024-2,047 (about
 * 0.02 s a token). The estimate is Theil-Sen's (the median of the slopes between every pair of points;
 * Sen, JASA 1968): it ignores the heavy tail of tool and user times, which would drag a least-squares fit.
 * It runs over a sliding window of recent pairs and is refitted every few observations; it is never
 * negative (a longer output does not bring the next call sooner), and zero until its first fit (once it
 * has AEG.minEvidence pairs, then AEG.slopeRefitEvery more).
 */
import type { quickselect as Quickselect } from 'simple-statistics' with { 'resolution-mode': 'import' };
import { AEG } from '../constants';

// simple-statistics ships a CommonJS build for require() but declares its types as ESM only.
const { quickselect } = require('simple-statistics') as { quickselect: typeof Quickselect };

export class GapSlope {
  private readonly outputs = new Float64Array(AEG.slopeWindow);
  private readonly gaps = new Float64Array(AEG.slopeWindow);
  /** Pairwise slopes of the window (scratch for the fit; a plain array, as quickselect takes one). */
  private readonly slopes: number[] = new Array<number>((AEG.slopeWindow * (AEG.slopeWindow - 1)) / 2).fill(0);
  private count = 0;
  private sinceFit = 0;
  private slope = 0;

  /** Seconds of gap per output token (0 before evidence). */
  get secondsPerToken(): number {
    return this.slope;
  }

  /** Pairs seen (for reports and tests). */
  get observations(): number {
    return this.count;
  }

  add(outputTokens: number, gapS: number): void {
    if (!(outputTokens >= 0 && gapS >= 0 && Number.isFinite(outputTokens) && Number.isFinite(gapS))) return;
    const at = this.count % AEG.slopeWindow;
    this.outputs[at] = outputTokens;
    this.gaps[at] = gapS;
    this.count++;
    if (this.count >= AEG.minEvidence && ++this.sinceFit >= AEG.slopeRefitEvery) this.fit();
  }

  private fit(): void {
    this.sinceFit = 0;
    const n = Math.min(this.count, AEG.slopeWindow);
    let m = 0;
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const dx = this.outputs[j] - this.outputs[i];
        if (dx !== 0) this.slopes[m++] = (this.gaps[j] - this.gaps[i]) / dx;
      }
    }
    if (m === 0) return;
    // The median by selection, not a sort: a fit sits on the path of a call's arrival at the gateway.
    const slopes = this.slopes;
    const k = m >> 1;
    quickselect(slopes, k, 0, m - 1);
    let median = slopes[k];
    if (m % 2 === 0) {
      let below = -Infinity; // the largest of the lower half: the (k - 1)th smallest
      for (let i = 0; i < k; i++) if (slopes[i] > below) below = slopes[i];
      median = (below + median) / 2;
    }
    this.slope = Math.max(0, median);
  }
}
