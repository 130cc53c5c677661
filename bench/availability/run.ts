// Runs every failure event against one deployment (a way of placing the clients' cells) and
// aggregates the outcomes: P(volume available | instance available) and blast radius.

import { assert } from "../../src/core/assert.ts";
import type { Cluster } from "../../src/control/placement/cluster.ts";
import { majority } from "../../src/control/placement/rules.ts";
import { deriveSeed, Rng } from "../../src/random.ts";
import { availabilityIndependent } from "./analytic.ts";
import type { Evaluator, Outcome } from "./evaluate.ts";
import { CellEvaluator } from "./evaluate.ts";
import { type FailureEvent, independentFailure } from "./events.ts";

export interface Deployment {
  /** "aware", "random", "monolith spread" or "monolith compact". */
  readonly placement: string;
  readonly size: number;
  readonly label: string;
}

export interface ScenarioResult {
  readonly deployment: string;
  readonly placement: string;
  readonly size: number;
  readonly scenario: string;
  readonly events: number;
  /** Mean over events of (clients whose cell is available) / (clients whose instance is up). */
  readonly availabilityMean: number;
  readonly availabilityWorst: number;
  /** Clients that lose their cell, per event. */
  readonly lostMean: number;
  readonly lostMax: number;
  readonly lostMeanFraction: number;
  readonly lostMaxFraction: number;
  /** Clients whose own instance is down in the event (not counted as lost). */
  readonly clientsDownMean: number;
}

export interface IndependentResult extends ScenarioResult {
  readonly fraction: number;
  readonly analytic: number;
  /** Events in which at least one client lost its cell. */
  readonly eventsWithLoss: number;
}

export function aggregate(deployment: Deployment, scenario: string, outcomes: readonly Outcome[], clients: number): ScenarioResult {
  assert(outcomes.length > 0, "every scenario has events");
  let availability = 0;
  let worst = 1;
  let lost = 0;
  let lostMax = 0;
  let down = 0;
  for (const o of outcomes) {
    const a = o.alive === 0 ? 1 : 1 - o.lost / o.alive;
    availability += a;
    worst = Math.min(worst, a);
    lost += o.lost;
    lostMax = Math.max(lostMax, o.lost);
    down += clients - o.alive;
  }
  const n = outcomes.length;
  return {
    deployment: deployment.label,
    placement: deployment.placement,
    size: deployment.size,
    scenario,
    events: n,
    availabilityMean: availability / n,
    availabilityWorst: worst,
    lostMean: lost / n,
    lostMax,
    lostMeanFraction: lost / n / clients,
    lostMaxFraction: lostMax / clients,
    clientsDownMean: down / n,
  };
}

/** The same node failures for every deployment: the seed depends only on (fraction, trial). */
export function independentEvent(cluster: Cluster, seed: number, fractionIndex: number, trial: number, fraction: number): FailureEvent {
  const rng = new Rng(deriveSeed(seed, 1, fractionIndex, trial));
  return independentFailure(cluster, fraction, () => rng.nextFloat());
}

export function runIndependent(
  cluster: Cluster,
  evaluator: Evaluator,
  deployment: Deployment,
  options: { seed: number; fractions: readonly number[]; trials: number; clients: number },
): IndependentResult[] {
  return options.fractions.map((fraction, fi) => {
    const outcomes: Outcome[] = [];
    for (let t = 0; t < options.trials; t++) {
      const event = independentEvent(cluster, options.seed, fi, t, fraction);
      const outcome = evaluator.evaluate(event);
      if (t === 0 && fraction === 0.5 && evaluator instanceof CellEvaluator) {
        const general = evaluator.evaluateGeneral(event);
        assert(general.lost === outcome.lost && general.alive === outcome.alive, "the fast path for node failures agrees with the general rule");
      }
      outcomes.push(outcome);
    }
    return {
      ...aggregate(deployment, "independent", outcomes, options.clients),
      fraction,
      analytic: availabilityIndependent(deployment.size, fraction),
      eventsWithLoss: outcomes.filter((o) => o.lost > 0).length,
    };
  });
}

/**
 * The monolith under independent failures needs many more trials than a million cells do:
 * each trial is all or nothing. Only its own members' fates matter, so sample just those.
 */
export function runMonolithIndependent(
  deployment: Deployment,
  options: { seed: number; fractions: readonly number[]; trials: number; clients: number },
): IndependentResult[] {
  return options.fractions.map((fraction, fi) => {
    const rng = new Rng(deriveSeed(options.seed, 2, fi));
    let up = 0;
    for (let t = 0; t < options.trials; t++) {
      let alive = 0;
      for (let m = 0; m < deployment.size; m++) if (!rng.chance(fraction)) alive++;
      if (alive >= majority(deployment.size)) up++;
    }
    const down = options.trials - up;
    return {
      deployment: deployment.label,
      placement: deployment.placement,
      size: deployment.size,
      scenario: "independent",
      events: options.trials,
      availabilityMean: up / options.trials,
      availabilityWorst: down > 0 ? 0 : 1,
      lostMean: (down / options.trials) * options.clients,
      lostMax: down > 0 ? options.clients : 0,
      lostMeanFraction: down / options.trials,
      lostMaxFraction: down > 0 ? 1 : 0,
      clientsDownMean: 0,
      fraction,
      analytic: availabilityIndependent(deployment.size, fraction),
      eventsWithLoss: down,
    };
  });
}

export function runCorrelated(
  evaluator: Evaluator,
  deployment: Deployment,
  scenarios: readonly { readonly name: string; readonly events: readonly FailureEvent[] }[],
  clients: number,
): ScenarioResult[] {
  return scenarios.map((scenario) => {
    const outcomes = scenario.events.map((event) => evaluator.evaluate(event));
    // The incremental path (only cells touching the event) must agree with a full scan.
    if (evaluator instanceof CellEvaluator) {
      const first = scenario.events[0]!;
      const full = evaluator.evaluateGeneral(first);
      assert(full.lost === outcomes[0]!.lost && full.alive === outcomes[0]!.alive, `incremental evaluation agrees with a full scan (${scenario.name})`);
    }
    return aggregate(deployment, scenario.name, outcomes, clients);
  });
}
