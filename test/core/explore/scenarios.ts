// The scenarios the explorer runs: each builds a root world (a scripted prefix, then the
// inputs and faults left to the search) and says how far to search from it.

import type { Operation } from "../../../src/core/messages.ts";
import type { Mutation } from "../../../src/core/mutations.ts";
import { utf8 } from "../../../src/core/value.ts";
import { Rng } from "../../../src/random.ts";
import type { Check } from "./history.ts";
import type { SearchBounds } from "./search.ts";
import { type Budget, type Input, type Message, World, type WorldSpec } from "./world.ts";

export interface Scenario {
  readonly name: string;
  readonly root: World;
  readonly bounds: SearchBounds;
}

export const put = (key: string, value: string): Operation => ({ kind: "tx", tx: { reads: [], conditions: [], writes: [{ key, op: "put", value: utf8(value) }] } });
export const addMember = (node: string): Operation => ({ kind: "config", change: { kind: "addMember", node } });
export const removeMember = (node: string): Operation => ({ kind: "config", change: { kind: "removeMember", node } });

const noFaults: Budget = { reorders: 0, copies: 0, drops: 0, ticks: 0, waits: 0, crashes: 0 };
export const budget = (overrides: Partial<Budget>): Budget => ({ ...noFaults, ...overrides });

/** Request ids, one sequence per client (a reply is matched to its request by client and id). */
const requestIds = new Map<string, number>();
function nextId(client: string): number {
  const id = (requestIds.get(client) ?? 0) + 1;
  requestIds.set(client, id);
  return id;
}

/** Starts every client's request ids again, so that a scenario built twice is built the same. */
function resetIds(): void {
  requestIds.clear();
}

/** A command input. */
export function input(client: string, at: readonly string[], command: { session: number; seq: number; op: Operation; acked?: number; force?: boolean; duplicate?: boolean }): Input {
  return {
    client, id: nextId(client), at, session: command.session, seq: command.seq, acked: command.acked ?? command.seq, op: command.op,
    force: command.force ?? true, duplicate: command.duplicate ?? false,
  };
}

export function openInput(client: string, at: readonly string[]): Input {
  const id = nextId(client);
  return { client, id, at, session: 0, seq: 0, acked: 0, op: { kind: "openSession", client, nonce: id }, force: true, duplicate: false };
}

const kindOf = (m: Message) => m.message.kind;
const slotOf = (m: Message): number | null => ("slot" in m.message ? m.message.slot : null);

/**
 * The original TLC-style check: one slot, three acceptors, two proposers competing (two
 * clients open sessions at two replicas at once), every order of delivery and every loss,
 * no learning by teaching. With `rounds` 1 each proposer tries once; 2 lets them retry after a nack.
 */
export function oneSlot(options: { rounds: number; mutations?: readonly Mutation[] }): Scenario {
  resetIds();
  const spec: WorldSpec = {
    cell: "v", members: ["a", "b", "c"], alpha: 3, mutations: options.mutations ?? [],
    outOfScope: (m) => kindOf(m) === "learn" || kindOf(m) === "teach" || (slotOf(m) ?? 0) > 1,
  };
  const root = World.create(spec, [], budget({ reorders: Infinity, drops: 0 }));
  // Both requests are in before anything is delivered, as in a race of two clients.
  root.send(openInput("client-x", ["a"]), "a");
  root.send(openInput("client-y", ["b"]), "b");
  return { name: "one slot, two proposers", root, bounds: { roundsMax: options.rounds } };
}

export interface MembershipOptions {
  readonly mutations?: readonly Mutation[];
  readonly checks?: readonly Check[];
  /** Keep dead messages in flight (to test the rule that drops them). */
  readonly keepDead?: boolean;
  readonly budget?: Partial<Budget>;
  readonly roundsMax?: number;
  readonly depthMax?: number;
  readonly statesMax?: number;
}

const to = (...ids: string[]) => (m: Message) => ids.includes(m.to);
const kind = (...kinds: string[]) => (m: Message) => kinds.includes(m.message.kind);
const atSlot = (...slots: number[]) => (m: Message) => slots.includes(slotOf(m) ?? -1);
const all = (...tests: ((m: Message) => boolean)[]) => (m: Message) => tests.every((t) => t(m));

/**
 * Issue 9: two membership changes inside one pipeline window. Genesis {A, B, C}, alpha 2, a
 * tail of one entry (so that replicas teach by snapshot). Slots 1-2 open two sessions; slot 3
 * adds N (so slot 5 is decided by {A, B, C, N}) and slot 4 removes B (so slot 6 is decided by
 * {A, C, N}). C leads; A votes for 3-4 and never learns they were chosen; slot 5 is chosen by
 * {C, B, N} (B learns no more than that 3-4 are chosen, and holds no votes for them); slot 6
 * by {C, N}; C and N apply through 6. Then a client asks A, which believes C dead, to take
 * over, and the search explores everything after. A's first window (3-4) has the quorum
 * {A, B}; a promise from C or N is past A's applied slot, and a leader must not count it for
 * slots 5-6 (invariant P).
 *
 * (The lead's first sketch had alpha 1, removing B before adding N. With alpha 1, C proposes
 * slot 4 only once it applied 3, and the accept for 4 tells A that 3 is chosen; so A cannot
 * hold votes for both without learning the first, and its first window already excludes B.
 * Adding before removing, with alpha 2, is the shape in which both defects bite.)
 */
export function membershipScenario(options: MembershipOptions): Scenario {
  resetIds();
  const spec: WorldSpec = {
    cell: "v", members: ["A", "B", "C"], joiners: ["N"], alpha: 2, tailEntriesMax: 1, mutations: options.mutations ?? [],
    ...(options.checks === undefined ? {} : { checks: options.checks }),
    ...(options.keepDead === undefined ? {} : { keepDead: options.keepDead }),
    alive: (self, peer) => !(self === "A" && peer === "C"),
  };
  const root = World.create(spec, [], budget(options.budget ?? {}));
  const admin = root.openSession("admin", "C");
  const w = root.openSession("w", "C");
  const expect = (condition: boolean, what: string) => {
    if (!condition) throw new Error(`membership prefix: ${what}`);
  };
  expect(root.replica("C").role === "leader" && root.replica("C").applied === 2, "C leads and every replica applied the two sessions' slots");
  // Slots 3 and 4: add N, remove B; A votes, B never hears of them.
  root.send(input("admin", ["C"], { session: admin, seq: 1, op: addMember("N"), acked: 1, force: false }), "C");
  root.send(input("admin", ["C"], { session: admin, seq: 2, op: removeMember("B"), acked: 1, force: false }), "C");
  root.dropWhere(to("B"));
  root.deliverWhere(all(kind("accept", "accepted"), atSlot(3, 4), to("A", "C")));
  expect(root.replica("C").applied === 4, "C applied the two membership changes");
  root.dropWhere(kind("commit"));
  // Slot 5 ({A, B, C, N}) is chosen by C, B and N; slot 6 ({A, C, N}) by C and N. A hears
  // neither (an accept would tell it that 3-4 are chosen); B learns that much, but holds no
  // votes for 3-4, and its request to learn them is lost.
  root.send(input("w", ["C"], { session: w, seq: 1, op: put("k", "five"), force: false }), "C");
  root.dropWhere(to("A"));
  root.deliverWhere(all(kind("accept", "accepted"), atSlot(5), to("B", "N", "C")));
  root.send(input("w", ["C"], { session: w, seq: 2, op: put("k", "six"), acked: 1, force: false }), "C");
  root.dropWhere((m) => to("A", "B")(m) || (kind("learn")(m) && m.from === "B"));
  root.deliverWhere(all(kind("accept", "accepted"), atSlot(6), to("N", "C")));
  expect(root.replica("C").applied === 6, "C applied slot 6");
  // N learns the cell from C (a snapshot); A and B learn nothing.
  root.dropWhere(to("A", "B"));
  root.deliverWhere((m) => to("N", "C")(m) && kind("commit", "learn", "teach")(m));
  expect(root.replica("N").applied === 6, "N installed C's state");
  expect(root.replica("A").applied === 2 && root.replica("B").applied === 2, `A and B are behind: ${root.replica("A").applied} ${root.replica("B").applied}`);
  root.dropWhere(() => true);
  // What is left to the search: a client asks A to take over.
  root.addLane([input("w", ["A"], { session: w, seq: 3, op: put("k", "A"), acked: 1, force: true })]);
  return { name: "membership", root, bounds: { roundsMax: options.roundsMax ?? 2, depthMax: options.depthMax ?? Infinity, statesMax: options.statesMax ?? Infinity } };
}

export interface RandomOptions {
  readonly mutations?: readonly Mutation[];
  readonly checks?: readonly Check[];
  readonly members?: readonly string[];
  readonly joiners?: readonly string[];
  readonly alpha?: number;
  readonly tailEntriesMax?: number;
  readonly sessionsMax?: number;
  /** Commands per writing client. */
  readonly commands?: number;
  readonly budget?: Partial<Budget>;
}

/**
 * The random-walk companion: five replicas, two spare nodes, an administrator moving
 * members in and out one at a time, two clients writing (each command duplicated by the
 * network and retried at another replica), a client churning a tiny session table, and every
 * fault the world knows (reordering, loss, duplication, time passing, crashes that recover
 * from the durable records). Which replica believes which peer dead is drawn from the seed,
 * so that leadership moves.
 */
export function randomWorld(seed: number, options: RandomOptions = {}): World {
  resetIds();
  const rng = new Rng(seed);
  const members = options.members ?? ["A", "B", "C", "D", "E"];
  const joiners = options.joiners ?? ["F", "G"];
  const everyone = [...members, ...joiners];
  const dead = new Set<string>();
  for (const self of everyone) for (const peer of everyone) if (self !== peer && rng.chance(0.2)) dead.add(`${self}>${peer}`);
  const spec: WorldSpec = {
    cell: "v", members, joiners, alpha: options.alpha ?? 2, tailEntriesMax: options.tailEntriesMax ?? 1, sessionsMax: options.sessionsMax ?? 3,
    mutations: options.mutations ?? [], alive: (self, peer) => !dead.has(`${self}>${peer}`),
    ...(options.checks === undefined ? {} : { checks: options.checks }),
  };
  const faults = { reorders: Infinity, copies: 20, drops: 40, ticks: 200, waits: 20, crashes: 6, ...options.budget };
  const root = World.create(spec, [], budget(faults), { durable: true });
  const first = members[0] as string;
  const admin = root.openSession("admin", first);
  const writers = ["w1", "w2"].map((client) => ({ client, session: root.openSession(client, first) }));
  // Each spare node comes in and an original member other than the first goes out, in turn.
  const changes: Operation[] = joiners.flatMap((node, i) => [addMember(node), removeMember(members[i + 1] ?? node)]);
  root.addLane(changes.map((op, i) => input("admin", members, { session: admin, seq: i + 1, op, acked: 1 })));
  const commands = options.commands ?? 4;
  for (const { client, session } of writers) {
    const lane: Input[] = [];
    for (let seq = 1; seq <= commands; seq++) {
      const op = put(`${client}-${seq}`, `${seq}`);
      lane.push(input(client, members, { session, seq, op, acked: seq, force: false, duplicate: true }));
      lane.push(input(client, everyone, { session, seq, op, acked: seq, force: true }));
    }
    root.addLane(lane);
  }
  root.addLane(Array.from({ length: 3 }, (_, i) => openInput(`churn-${i}`, members)));
  return root;
}
