/**
 * E[max(0, N − free)] for N ~ Poisson(mean): how many of the calls arriving in a window find no free place
 * when `free` places are open and `mean` calls are expected (arrivals taken as Poisson, the usual model of
 * independent users). Computed as mean − free + Σ_{k<free} (free − k)·P(N = k), with P(N = k) built in
 * log space so a large mean does not underflow e^(−mean).
 */
import { badArgument } from '../errors';

export function poissonExcess(mean: number, free: number): number {
  if (!(mean >= 0 && Number.isFinite(mean))) throw badArgument(`poissonExcess: the mean must be a finite number >= 0, got ${mean}`);
  if (!(Number.isInteger(free) && free >= 0)) throw badArgument(`poissonExcess: free must be an integer >= 0, got ${free}`);
  if (mean === 0) return 0;
  let logP = -mean;
  const logMean = Math.log(mean);
  let below = 0;
  for (let k = 0; k < free; k++) {
    below += (free - k) * Math.exp(logP);
    logP += logMean - Math.log(k + 1);
  }
  return Math.max(0, mean - free + below);
}
