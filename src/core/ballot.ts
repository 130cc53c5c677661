import type { Ballot } from "./messages.ts";

export const zeroBallot: Ballot = { round: 0, node: "" };

/** Orders ballots by round, then node id. */
export function compareBallots(a: Ballot, b: Ballot): number {
  if (a.round !== b.round) return a.round - b.round;
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

export function ballotsEqual(a: Ballot, b: Ballot): boolean {
  return a.round === b.round && a.node === b.node;
}
