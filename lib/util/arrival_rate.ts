/**
 * Calls per second arriving somewhere lately: an exponentially weighted rate (each arrival counts 1/τ,
 * decaying by e^(−Δt/τ)), so that it follows a load that changes within a few τ and needs O(1) state. It
 * reads only arrivals already seen: an online estimate.
 */
import { badArgument } from '../errors';

export class ArrivalRate {
  private value = 0;
  private lastS = -Infinity;

  /** `timeConstantS`: τ, the time over which an arrival's weight falls to 1/e. */
  constructor(private readonly timeConstantS: number) {
    if (!(timeConstantS > 0 && Number.isFinite(timeConstantS))) throw badArgument(`ArrivalRate: the time constant must be a positive number of seconds, got ${timeConstantS}`);
  }

  /** One arrival at `nowS` (times never go backwards; an earlier one counts as now). */
  record(nowS: number): void {
    this.value = this.perS(nowS) + 1 / this.timeConstantS;
    this.lastS = Math.max(this.lastS, nowS);
  }

  /** The estimated arrivals per second at `nowS`. */
  perS(nowS: number): number {
    if (this.value === 0) return 0;
    return this.value * Math.exp(-Math.max(0, nowS - this.lastS) / this.timeConstantS);
  }
}
