// The closed form for independent failures, to check the Monte Carlo against: a cell of n
// replicas is available when at least floor(n/2) + 1 of them are up.

import { majority } from "../../src/control/placement/rules.ts";

function choose(n: number, k: number): number {
  let result = 1;
  for (let i = 1; i <= k; i++) result = (result * (n - k + i)) / i;
  return result;
}

/** P(at least a majority of `size` replicas up) when each is down with probability `fraction`. */
export function availabilityIndependent(size: number, fraction: number): number {
  let p = 0;
  for (let up = majority(size); up <= size; up++) p += choose(size, up) * (1 - fraction) ** up * fraction ** (size - up);
  return p;
}
