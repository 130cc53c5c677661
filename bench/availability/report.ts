// The evaluation's tables, as Markdown.

import type { Claim } from "./claims.ts";
import type { IndependentResult, ScenarioResult } from "./run.ts";

/** Availability as a percentage that never rounds a loss away to 100%. */
export function formatAvailability(x: number): string {
  if (x === 1) return "100%";
  const text = `${(100 * x).toFixed(4)}%`;
  return text === "100.0000%" ? `${(100 * x).toFixed(7)}%` : text;
}

function formatLoss(fraction: number): string {
  if (fraction === 0) return "0";
  if (fraction < 0.0001) return `${(100 * fraction).toPrecision(2)}%`;
  return `${(100 * fraction).toFixed(2)}%`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

export function independentTable(results: readonly IndependentResult[], deployments: readonly string[]): string {
  const fractions = [...new Set(results.map((r) => r.fraction))];
  return table(
    ["nodes failed", ...deployments],
    fractions.map((f) => [
      `${(100 * f).toFixed(1)}%`,
      ...deployments.map((d) => {
        const r = results.find((x) => x.deployment === d && x.fraction === f);
        return r === undefined ? "" : formatAvailability(r.availabilityMean);
      }),
    ]),
  );
}

export function analyticTable(results: readonly IndependentResult[], sizes: readonly number[]): string {
  const fractions = [...new Set(results.map((r) => r.fraction))];
  return table(
    ["nodes failed", ...sizes.map((s) => `${s}: simulated`), ...sizes.map((s) => `${s}: binomial`)],
    fractions.map((f) => {
      const rows = sizes.map((s) => results.find((x) => x.deployment === `aware ${s}` && x.fraction === f));
      return [`${(100 * f).toFixed(1)}%`, ...rows.map((r) => (r === undefined ? "" : formatAvailability(r.availabilityMean))), ...rows.map((r) => (r === undefined ? "" : formatAvailability(r.analytic)))];
    }),
  );
}

export function scenarioTables(results: readonly ScenarioResult[], deployments: readonly string[]): { availability: string; blast: string } {
  const scenarios = [...new Set(results.map((r) => r.scenario))];
  const cell = (d: string, s: string) => results.find((r) => r.deployment === d && r.scenario === s);
  return {
    availability: table(
      ["scenario (events)", ...deployments],
      scenarios.map((s) => [
        `${s} (${cell(deployments[0]!, s)?.events ?? "?"})`,
        ...deployments.map((d) => {
          const r = cell(d, s);
          return r === undefined ? "" : `${formatAvailability(r.availabilityMean)} (${formatAvailability(r.availabilityWorst)})`;
        }),
      ]),
    ),
    blast: table(
      ["scenario", ...deployments],
      scenarios.map((s) => [
        s,
        ...deployments.map((d) => {
          const r = cell(d, s);
          return r === undefined ? "" : `${formatLoss(r.lostMeanFraction)} (${formatLoss(r.lostMaxFraction)})`;
        }),
      ]),
    ),
  };
}

export function claimsList(claims: readonly Claim[]): string {
  return claims.map((c) => `- **${c.holds ? "Holds" : "Does not hold"}**: ${c.claim} ${c.evidence}.`).join("\n");
}
