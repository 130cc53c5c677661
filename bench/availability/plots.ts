// The evaluation's figures, from its results.

import type { IndependentResult, ScenarioResult } from "./run.ts";
import { barChart, lineChart, type LineSeries } from "./svg.ts";

export const sizeColors: Record<number, string> = { 3: "#d62728", 5: "#ff7f0e", 7: "#1f77b4", 9: "#2ca02c" };
const deploymentColors: Record<string, string> = {
  "aware 7": "#1f77b4",
  "random 7": "#9e9e9e",
  "monolith spread": "#6a3d9a",
  "monolith compact": "#222222",
  "aware 3": "#d62728",
  "aware 9": "#2ca02c",
  "random 3": "#d9a0a0",
};

const pct = (digits: number) => (x: number) => `${(100 * x).toFixed(digits)}%`;

function seriesOf(results: readonly IndependentResult[], deployment: string): [number, number][] {
  return results.filter((r) => r.deployment === deployment).map((r) => [r.fraction, r.availabilityMean]);
}

export function availabilityPlot(results: readonly IndependentResult[], sizes: readonly number[], cells: number, trials: number): string {
  const series: LineSeries[] = sizes.map((size) => ({ label: `${size} replicas (topology-aware)`, color: sizeColors[size] ?? "#000", markers: true, points: seriesOf(results, `aware ${size}`) }));
  series.push({ label: "7 replicas, random placement", color: "#9e9e9e", dash: "5 4", points: seriesOf(results, "random 7") });
  return lineChart({
    title: "Availability under independent node failures, by cell size",
    subtitle: `${cells.toLocaleString("en-US")} cells on 10,000 nodes, ${trials} failure draws per point; P(volume available | instance available)`,
    xLabel: "fraction of nodes failed",
    yLabel: "fraction of clients whose cell has a majority",
    x: [0, 0.6],
    y: [0, 1],
    xTicks: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
    yTicks: [0, 0.2, 0.4, 0.6, 0.8, 1],
    xFormat: pct(0),
    yFormat: pct(0),
    series,
    markers: [{ x: 0.5, label: "half the nodes" }],
    legend: "bottom-left",
  });
}

export function unavailabilityPlot(results: readonly IndependentResult[], sizes: readonly number[]): string {
  const series: LineSeries[] = [];
  for (const size of sizes) {
    const rows = results.filter((r) => r.deployment === `aware ${size}`);
    series.push({ label: `${size}: simulated`, color: sizeColors[size] ?? "#000", markers: true, points: rows.map((r) => [r.fraction, 1 - r.availabilityMean]) });
    series.push({ label: `${size}: binomial`, color: sizeColors[size] ?? "#000", dash: "3 3", points: rows.map((r) => [r.fraction, 1 - r.analytic]) });
  }
  return lineChart({
    title: "Unavailability under independent node failures (log-log)",
    subtitle: "simulated points appear only where some client lost its cell; dashed lines are the binomial closed form",
    xLabel: "fraction of nodes failed",
    yLabel: "fraction of clients whose cell has no majority",
    x: [0.001, 0.6],
    y: [1e-9, 1],
    xLog: true,
    yLog: true,
    xTicks: [0.001, 0.01, 0.1, 0.5],
    yTicks: [1e-9, 1e-7, 1e-5, 1e-3, 1e-1],
    xFormat: (x) => `${100 * x}%`,
    yFormat: (y) => y.toExponential(0),
    series,
    legend: "bottom-right",
  });
}

const shown = ["aware 3", "aware 7", "aware 9", "random 3", "random 7", "monolith spread", "monolith compact"];

export function blastRadiusPlot(results: readonly ScenarioResult[], scenarios: readonly string[], clients: number): string {
  return barChart({
    title: "Blast radius: clients that lose their cell in one failure event",
    subtitle: `percent of all ${clients.toLocaleString("en-US")} clients; clients whose own instance is down are not counted`,
    yLabel: "clients losing their cell",
    categories: scenarios,
    series: shown.map((deployment) => {
      const rows = scenarios.map((s) => results.find((r) => r.deployment === deployment && r.scenario === s));
      return {
        label: deployment,
        color: deploymentColors[deployment] ?? "#000",
        values: rows.map((r) => r?.lostMeanFraction ?? 0),
        extremes: rows.map((r) => r?.lostMaxFraction ?? 0),
      };
    }),
    yMax: 1,
    yTicks: [0, 0.2, 0.4, 0.6, 0.8, 1],
    yFormat: pct(0),
    valueFormat: (x) => (x === 0 ? "0" : x < 0.001 ? `${(100 * x).toPrecision(1)}%` : x < 0.1 ? `${(100 * x).toFixed(1)}%` : `${(100 * x).toFixed(0)}%`),
    extremeName: "worst",
  });
}
