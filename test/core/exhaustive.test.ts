// In the spirit of the paper's TLC-inspired suite: for one slot and three acceptors, with two
// proposers competing, explore every order in which messages can arrive and every subset of
// them that can be lost, and check in every reachable state that at most one value is
// chosen, and that no replica learns a value that was not chosen.
//
// States are deduplicated on a structural fingerprint of the replicas and the messages in
// flight, and explored by cloning; rounds are bounded so that the space is finite.

import { expect, test } from "bun:test";
import { toHex } from "../../src/core/bytes.ts";
import { type Outgoing, clearEffects, createEffects } from "../../src/core/effects.ts";
import type { Ballot, LogValue, Operation } from "../../src/core/messages.ts";
import { Replica, type ReplicaEnv } from "../../src/core/replica.ts";

interface InFlight {
  readonly from: string;
  readonly out: Outgoing;
}

interface State {
  readonly replicas: Map<string, Replica>;
  readonly pending: InFlight[];
  /** The value chosen for slot 1 so far, once a majority accepted it at one ballot. */
  readonly chosen: string | null;
}

const members = ["a", "b", "c"];
// One ballot round per proposer in CI (about 26,000 states, half a minute); ROUNDS=2 explores
// retries after a nack too, for a long offline run.
const roundsMax = Number(process.env.ROUNDS ?? 1);
// Nobody is ever believed alive: every nack makes a proposer try again, higher.
const env: ReplicaEnv = { isAlive: () => false, jitter: () => 0.5 };

function clone<T>(value: T, seen = new Map<unknown, unknown>()): T {
  if (typeof value !== "object" || value === null || (value as unknown) === env) return value;
  if (seen.has(value)) return seen.get(value) as T;
  if (value instanceof Uint8Array) return value.slice() as T;
  if (value instanceof Map) {
    const copy = new Map();
    seen.set(value, copy);
    for (const [k, v] of value) copy.set(clone(k, seen), clone(v, seen));
    return copy as T;
  }
  if (value instanceof Set) {
    const copy = new Set();
    seen.set(value, copy);
    for (const v of value) copy.add(clone(v, seen));
    return copy as T;
  }
  const copy = Array.isArray(value) ? [] : Object.create(Object.getPrototypeOf(value));
  seen.set(value, copy);
  for (const key of Object.keys(value)) copy[key] = clone((value as Record<string, unknown>)[key], seen);
  return copy as T;
}

function fingerprint(state: State): string {
  const replicas = [...state.replicas.values()].map((r) => JSON.stringify(r, (key, v) => {
    if (key === "env") return undefined;
    if (typeof v === "bigint") return `${v}n`;
    if (v instanceof Uint8Array) return toHex(v);
    if (v instanceof Map) return [...v.entries()];
    if (v instanceof Set) return [...v].sort();
    return v;
  }));
  const pending = state.pending.map((p) => `${p.from}>${JSON.stringify(p.out, (_, v) => (v instanceof Uint8Array ? toHex(v) : v))}`).sort();
  return `${replicas.join("|")}#${pending.join(",")}#${state.chosen}`;
}

const printValue = (value: LogValue) => JSON.stringify(value, (_, v) => (v instanceof Uint8Array ? toHex(v) : v));

/** Delivers message `index` of `state` into a fresh copy; null if it leaves the explored scope. */
function deliver(state: State, index: number): State | null {
  const next: State = { replicas: clone(state.replicas), pending: [...state.pending], chosen: state.chosen };
  const [{ from, out }] = next.pending.splice(index, 1) as [InFlight];
  const effects = createEffects();
  next.replicas.get(out.to)?.step(from, out.message, 0, effects);
  for (const message of effects.messages) {
    const m = message.message;
    if (!members.includes(message.to)) continue; // replies to clients
    if ((m.kind === "accept" || m.kind === "accepted") && m.slot > 1) continue; // one slot only
    if (m.kind === "learn" || m.kind === "teach") continue; // learning by teaching is out of scope
    next.pending.push({ from: out.to, out: message });
  }
  clearEffects(effects);
  for (const replica of next.replicas.values()) if (replica.promisedBallot.round > roundsMax) return null;
  return next;
}

/** Returns a violation, or updates nothing and returns null. */
function check(state: State): { state: State; violation: string | null } {
  // A value is chosen when a majority accepted it at one ballot.
  const votes = new Map<string, number>();
  for (const replica of state.replicas.values()) {
    const accepted = (replica as unknown as { accepted: Map<number, { ballot: Ballot; value: LogValue }> }).accepted.get(1);
    if (accepted === undefined) continue;
    const key = `${accepted.ballot.round}.${accepted.ballot.node}=${printValue(accepted.value)}`;
    votes.set(key, (votes.get(key) ?? 0) + 1);
  }
  let chosen = state.chosen;
  for (const [key, count] of votes) {
    if (count < 2) continue;
    const value = key.slice(key.indexOf("=") + 1);
    if (chosen !== null && chosen !== value) return { state, violation: `two values chosen for slot 1: ${chosen} and ${value}` };
    chosen = value;
  }
  // A replica may learn only the chosen value.
  for (const [id, replica] of state.replicas) {
    const learned = replica.chosenValue(1);
    if (learned === undefined) continue;
    if (chosen === null || printValue(learned) !== chosen) return { state, violation: `${id} learned ${printValue(learned)} but chosen is ${chosen}` };
  }
  return { state: { ...state, chosen }, violation: null };
}

test("for one slot and three acceptors, no order or loss of messages chooses two values", () => {
  const replicas = new Map(members.map((id) => [id, new Replica({ cell: "v", self: id, env, genesis: { members } })]));
  const effects = createEffects();
  const pending: InFlight[] = [];
  // Two clients insist at two replicas at once, so both campaign.
  for (const [to, value] of [["a", "x"], ["b", "y"]] as const) {
    // Each opens a session: the first command of any client, and a value like any other.
    const op: Operation = { kind: "openSession", client: `client-${value}`, nonce: 1 };
    replicas.get(to)?.step(`client-${value}`, { kind: "request", client: `client-${value}`, id: 1, session: 0, seq: 0, acked: 0, op, consistency: "consistent", minApplied: 0, force: true }, 0, effects);
    for (const out of effects.messages) if (members.includes(out.to)) pending.push({ from: to, out });
    clearEffects(effects);
  }
  const seen = new Set<string>();
  const stack: State[] = [{ replicas, pending, chosen: null }];
  const chosenValues = new Set<string>();
  let explored = 0;
  let violation: string | null = null;
  while (stack.length > 0 && violation === null) {
    const current = stack.pop() as State;
    const checked = check(current);
    if (checked.violation !== null) {
      violation = checked.violation;
      break;
    }
    const key = fingerprint(checked.state);
    if (seen.has(key)) continue;
    seen.add(key);
    explored++;
    if (checked.state.chosen !== null) chosenValues.add(checked.state.chosen);
    for (let i = 0; i < checked.state.pending.length; i++) {
      const next = deliver(checked.state, i);
      if (next !== null) stack.push(next);
    }
  }
  expect(violation).toBeNull();
  // The exploration is not trivial: both values can win, depending on the order.
  expect(chosenValues.size).toBe(2);
  expect(explored).toBeGreaterThan(10_000);
}, 300_000);
