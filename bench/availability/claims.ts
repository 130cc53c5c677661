// The paper's claims, checked against the results. Each says whether it holds here and on
// what evidence, so the README can state plainly where it does and where it does not.

import type { IndependentResult, ScenarioResult } from "./run.ts";

export interface Claim {
  readonly claim: string;
  readonly holds: boolean;
  readonly evidence: string;
}

const percent = (x: number, digits = 2): string => `${(100 * x).toFixed(digits)}%`;
/** A share of clients that shows small losses instead of rounding them to zero. */
const share = (x: number): string => (x === 0 ? "0%" : x < 0.001 ? `${(100 * x).toPrecision(2)}%` : `${(100 * x).toFixed(2)}%`);

function find<T extends ScenarioResult>(results: readonly T[], deployment: string, test: (r: T) => boolean = () => true): T | undefined {
  return results.find((r) => r.deployment === deployment && test(r));
}

export function checkClaims(independent: readonly IndependentResult[], scenarios: readonly ScenarioResult[], sizes: readonly number[]): Claim[] {
  const claims: Claim[] = [];
  const availabilityAt = (size: number, fraction: number): number =>
    find(independent, `aware ${size}`, (r) => r.fraction === fraction)?.availabilityMean ?? Number.NaN;
  const fractions = [...new Set(independent.map((r) => r.fraction))];
  const decreasing = (fraction: number): boolean => sizes.every((s, i) => i === 0 || availabilityAt(sizes[i - 1]!, fraction) > availabilityAt(s, fraction));
  const increasing = (fraction: number): boolean => sizes.every((s, i) => i === 0 || availabilityAt(sizes[i - 1]!, fraction) < availabilityAt(s, fraction));
  const above = fractions.filter((f) => f > 0.5);
  const below = fractions.filter((f) => f >= 0.05 && f < 0.5);
  const row = (f: number): string => `${percent(f, 1)} failed: ${sizes.map((s) => `${s} -> ${percent(availabilityAt(s, f))}`).join(", ")}`;
  claims.push({
    claim: "Smaller cells are more available than larger ones once more than half of the nodes fail.",
    holds: above.length > 0 && above.every(decreasing),
    evidence: above.map(row).join("; "),
  });
  claims.push({
    claim: "Larger cells are more available than smaller ones under small numbers of uncorrelated failures.",
    holds: below.length > 0 && below.every(increasing),
    evidence: below.map(row).join("; "),
  });

  const correlated = [...new Set(scenarios.map((r) => r.scenario))];
  for (const size of sizes) {
    const better: string[] = [];
    const same: string[] = [];
    const worse: string[] = [];
    for (const scenario of correlated) {
      const aware = find(scenarios, `aware ${size}`, (r) => r.scenario === scenario);
      const random = find(scenarios, `random ${size}`, (r) => r.scenario === scenario);
      if (aware === undefined || random === undefined) continue;
      const text = `${scenario} (${share(aware.lostMeanFraction)} vs ${share(random.lostMeanFraction)})`;
      if (aware.lostMean < random.lostMean * 0.99) better.push(text);
      else if (aware.lostMean <= random.lostMean * 1.01) same.push(text);
      else worse.push(text);
    }
    claims.push({
      claim: `Placement near the client beats random placement under correlated failures (cells of ${size}).`,
      holds: worse.length === 0 && better.length > 0,
      evidence: [
        `Share of clients losing their cell per event, aware vs random. Better: ${better.join("; ") || "none"}`,
        `About the same (within 1%): ${same.join("; ") || "none"}`,
        `Worse: ${worse.join("; ") || "none"}`,
      ].join(". "),
    });
  }

  const monolithWorst = scenarios
    .filter((r) => r.placement.startsWith("monolith"))
    .reduce<ScenarioResult | undefined>((w, r) => (w === undefined || r.lostMaxFraction > w.lostMaxFraction ? r : w), undefined);
  const awareWorst = scenarios
    .filter((r) => r.placement === "aware")
    .reduce<ScenarioResult | undefined>((w, r) => (w === undefined || r.lostMaxFraction > w.lostMaxFraction ? r : w), undefined);
  const everything = scenarios.filter((r) => r.placement.startsWith("monolith") && r.lostMaxFraction >= 0.9).map((r) => `${r.deployment}: ${r.scenario} (${percent(r.lostMaxFraction, 1)})`);
  claims.push({
    claim: "A monolith's blast radius is everything.",
    holds: monolithWorst !== undefined && monolithWorst.lostMaxFraction >= 0.9,
    evidence:
      `worst single events reaching 90% or more of clients: ${everything.join("; ") || "none"}. ` +
      (awareWorst === undefined ? "" : `The worst single event for topology-aware cells: ${awareWorst.scenario} with ${awareWorst.deployment} (${percent(awareWorst.lostMaxFraction, 1)})`),
  });
  return claims;
}
