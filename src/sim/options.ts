// What one simulated run does. Everything is derived from the seed and these options.

export const faultKinds = ["loss", "duplicate", "reorder", "delay", "partition", "corrupt", "crash", "drift", "membership", "late", "churn", "wipe"] as const;
export type FaultKind = (typeof faultKinds)[number];

import { type Mutation, mutationKinds } from "../core/mutations.ts";

/**
 * Deliberate bugs, to show the simworld catches them. In the driver:
 * - forgetPromises: promise records are never written (a replica that skips persisting its promise);
 * - forgetAccepts: accepted values are never written;
 * - sendBeforeSync: messages leave before the records they depend on are durable;
 * - reuseIdentity: a node whose disk was wiped comes back with its former identity, so its
 *   empty replicas pass for the ones that voted (issue 10: "a wiped node that votes again").
 * In the cell core, as mutations (see core/mutations.ts): latePromise, emptyAck, lruSessions.
 */
export const driverBugKinds = ["forgetPromises", "forgetAccepts", "sendBeforeSync", "reuseIdentity"] as const;
export const bugKinds = [...driverBugKinds, ...mutationKinds] as const;
export type BugKind = (typeof bugKinds)[number];

/** The core mutation a bug kind stands for, if it is one. */
export function mutationOf(bug: BugKind | undefined): Mutation | null {
  return bug !== undefined && (mutationKinds as readonly string[]).includes(bug) ? (bug as Mutation) : null;
}

export interface SimOptions {
  readonly seed: number;
  readonly nodes: number;
  readonly cells: number;
  /** Replicas per cell; when absent each seed picks 3, 5 or 7 (tight quorums find more bugs). */
  readonly members?: number;
  readonly clientsPerCell: number;
  /** Clients per cell that take turns holding a lease (default 2). */
  readonly leaseClientsPerCell?: number;
  /**
   * How much faster the fastest clock runs than the slowest (nodes and lease clients). When
   * absent: within ±5% with the drift fault, 1 without. Leases are safe up to
   * `limits.clockRateRatioMax` (3); past it, two holders can overlap.
   */
  readonly clockRateRatio?: number;
  /** Short-lived clients per cell (one or two operations each, in bursts); when absent, chosen per seed with the churn fault. */
  readonly churnClientsPerCell?: number;
  readonly opsPerClient: number;
  readonly faults: ReadonlySet<FaultKind>;
  readonly bug?: BugKind;
  /** Simulated milliseconds of faults before everything heals. */
  readonly faultMs: number;
  /** Simulated milliseconds after healing within which every operation must finish. */
  readonly livenessMs: number;
  /** Whether receivers drop replayed frames; when absent, even seeds run with the guard, odd ones without. */
  readonly replayGuard?: boolean;
  /** Prints every message, tick, crash and applied slot of this cell, for debugging a seed. */
  readonly trace?: { readonly cell: string; readonly print: (line: string) => void };
}

export const defaultSimOptions: Omit<SimOptions, "seed"> = {
  nodes: 7,
  cells: 2,
  clientsPerCell: 3,
  opsPerClient: 25,
  faults: new Set(faultKinds),
  faultMs: 4_000,
  livenessMs: 30_000,
};

export function parseFaults(text: string): Set<FaultKind> {
  if (text === "all") return new Set(faultKinds);
  if (text === "none") return new Set();
  const out = new Set<FaultKind>();
  for (const name of text.split(",")) {
    if (!(faultKinds as readonly string[]).includes(name)) {
      throw new SimOptionsError(`Cannot simulate: unknown fault ${JSON.stringify(name)}; choose from all, none, ${faultKinds.join(", ")}`);
    }
    out.add(name as FaultKind);
  }
  return out;
}

export class SimOptionsError extends Error {
  override name = "SimOptionsError";
}

export function checkSimOptions(options: SimOptions): SimOptions {
  const bad = (problem: string) => new SimOptionsError(`Cannot simulate: ${problem}`);
  const integer = (value: number, name: string, min: number, max: number) => {
    if (!Number.isInteger(value) || value < min || value > max) throw bad(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  };
  integer(options.seed, "seed", 0, 0xffff_ffff);
  integer(options.nodes, "nodes", 1, 64);
  integer(options.cells, "cells", 1, 1000);
  if (options.members !== undefined) integer(options.members, "members", 1, 9);
  integer(options.clientsPerCell, "clients per cell", 1, 50);
  if (options.churnClientsPerCell !== undefined) integer(options.churnClientsPerCell, "churn clients per cell", 0, 10_000);
  if (options.leaseClientsPerCell !== undefined) integer(options.leaseClientsPerCell, "lease clients per cell", 0, 50);
  if (options.clockRateRatio !== undefined && !(options.clockRateRatio >= 1 && options.clockRateRatio <= 100)) throw bad(`clock rate ratio must be from 1 to 100, got ${options.clockRateRatio}`);
  integer(options.opsPerClient, "ops per client", 0, 10_000);
  if (options.members !== undefined && options.members > options.nodes) {
    throw bad(`members (${options.members}) cannot exceed nodes (${options.nodes})`);
  }
  return options;
}
