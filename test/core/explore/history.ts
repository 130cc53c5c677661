// What the explorer has seen so far in one state's past, and the invariants it checks after
// every step of every replica:
// - agreement: one value per slot, whoever chose, learned or applied it, and one state per
//   applied slot (snapshots included);
// - invariant A (replica.ts): an `accepted(b, s)` is sent only by a replica that holds its own
//   vote at b for s right after the step that sent it;
// - P2c: once a value is chosen at slot s and ballot b, every proposal for s at a higher
//   ballot carries that value (checked in both orders: a proposal made before the choice was
//   seen counts too, as it does in Paxos), and one ballot proposes one value per slot;
// - exactly once: no (session, seq) is carried out twice, and none is carried out after a
//   replica refused it for good (staleRequest, sessionExpired);
// - replies: every `done` reply agrees with the log: the result computed when the command was
//   carried out, or a refusal of a command that never was (and an open's answer is a session
//   the log opened for that request).
// The results of carried-out commands come from a reference copy of the cell state that
// applies each slot once, the first time any replica applies it, with the replicas' own
// options: it is the log's own answer, so the checks hold whatever the replicas' code does.

import { compareBallots } from "../../../src/core/ballot.ts";
import type { CellState } from "../../../src/core/cellstate.ts";
import { printLogValue } from "../../../src/core/describe.ts";
import type { ChosenAtBallot, Effects } from "../../../src/core/effects.ts";
import { sameData } from "../../../src/core/equal.ts";
import type { Ballot, ClientReply, CommandResult, LogValue, Operation } from "../../../src/core/messages.ts";
import type { Replica } from "../../../src/core/replica.ts";
import { cloneDeep, hashBytes, printData } from "./data.ts";

/** The invariants, each of which a scenario may leave out (to show what another one alone sees). */
export const checkKinds = ["agreement", "invariantA", "p2c", "exactlyOnce", "replies"] as const;
export type Check = (typeof checkKinds)[number];

/** A request some client sent, by `client#id`, so that a reply can be matched to its command. */
export interface SentRequest {
  readonly client: string;
  readonly id: number;
  readonly session: number;
  readonly seq: number;
  readonly op: Operation;
}

interface Carried {
  readonly slot: number;
  readonly result: CommandResult;
}

const ballotKey = (b: Ballot) => `${b.round}.${b.node}`;
const clip = (text: string) => (text.length > 160 ? `${text.slice(0, 160)}...` : text);

/** Everything the history remembers; copied on the first write after a fork. */
interface Seen {
  /** The value of each slot, as first seen chosen, learned or applied anywhere. */
  readonly values: Map<number, string>;
  /** A hash of the cell state's canonical encoding after each applied slot, as first seen. */
  readonly states: Map<number, string>;
  /** The lowest ballot at which a leader saw each slot chosen, and the value. */
  readonly chosenAt: Map<number, { readonly ballot: Ballot; readonly value: string }>;
  /** Every proposal seen (an accept sent or a leader's own accept record), by slot, then ballot. */
  readonly proposals: Map<number, Map<string, { readonly ballot: Ballot; readonly value: string }>>;
  readonly carried: Map<string, Carried>;
  readonly refused: Set<string>;
  /** Sessions each open request (client:nonce) created: a retried open may create two. */
  readonly opened: Map<string, number[]>;
  /** The highest `acked` any applied command carried, per session: below it the client has its answers. */
  readonly acked: Map<number, number>;
  /** When each session was last used, in the cell's time. */
  readonly usedAt: Map<number, number>;
}

export class History {
  private seen: Seen;
  /** True while another history shares `seen` (or `reference`): the next write copies it first. */
  private seenShared = false;
  private referenceShared = false;
  private printed: string | null = null;
  /** Counters for reports; not part of any check. */
  readonly counts = { chosen: 0, carried: 0, replies: 0 };
  violation: string | null = null;

  constructor(
    private reference: CellState,
    private readonly lruSessions: boolean,
    private readonly checks: ReadonlySet<Check> = new Set(checkKinds),
  ) {
    this.seen = {
      values: new Map(), states: new Map(), chosenAt: new Map(), proposals: new Map(), carried: new Map(), refused: new Set(),
      opened: new Map(), acked: new Map(), usedAt: new Map(),
    };
  }

  /** A copy sharing everything until one of the two writes. */
  fork(): History {
    const copy = new History(this.reference, this.lruSessions, this.checks);
    copy.seen = this.seen;
    this.seenShared = copy.seenShared = true;
    this.referenceShared = copy.referenceShared = true;
    copy.printed = this.printed;
    Object.assign(copy.counts, this.counts);
    copy.violation = this.violation;
    return copy;
  }

  private write(): Seen {
    if (this.seenShared) {
      this.seen = cloneDeep(this.seen, () => false);
      this.seenShared = false;
    }
    this.printed = null;
    return this.seen;
  }

  /**
   * The text that identifies this history in a state fingerprint: its facts in a canonical
   * order (two paths that saw the same facts in another order lead to the same state). The
   * reference state and the state hashes are left out: while agreement holds, they follow
   * from the values.
   */
  print(): string {
    if (this.printed === null) {
      const { states: _, ...rest } = this.seen;
      const sorted = Object.entries(rest).map(([name, facts]) => [name, [...facts].map((f) => printData(f)).sort()]);
      this.printed = printData(sorted);
    }
    return this.printed;
  }

  /** The value of `slot` as first seen anywhere, printed; undefined while nobody holds it. */
  valueAt(slot: number): string | undefined {
    return this.seen.values.get(slot);
  }

  /** The sessions the log opened for one open request (`client` and its nonce). */
  openedFor(client: string, nonce: number): readonly number[] {
    return this.seen.opened.get(`${client}:${nonce}`) ?? [];
  }

  private fail(check: Check | "harness", message: string): void {
    if (this.violation === null && (check === "harness" || this.checks.has(check))) this.violation = message;
  }

  /**
   * Checks one step of `replica` (named `id`): its effects, and its state right after. `before`
   * is its applied slot before the step; `requestOf` finds the request a reply answers.
   */
  afterStep(id: string, replica: Replica, before: number, effects: Effects, requestOf: (client: string, requestId: number) => SentRequest | undefined): void {
    for (const chosen of effects.chosen) this.noteChosen(id, chosen);
    for (const { record } of effects.records) {
      if (record.kind === "accept") this.noteProposal(id, record.slot, record.ballot, record.value);
      else if (record.kind === "chosen") this.noteValue(id, record.slot, record.value, "learned");
      else if (record.kind === "snapshot") this.noteState(id, record.slot, hashBytes(record.state));
    }
    for (const entry of effects.applied) {
      this.noteValue(id, entry.slot, entry.value, "applied");
      this.noteExecution(id, entry.slot, entry.value, entry.executed);
    }
    const state = replica.cellState;
    if (state !== null && state.applied > before) this.noteState(id, state.applied, hashBytes(state.encode()));
    for (const { message, to } of effects.messages) {
      if (message.kind === "accepted") {
        const held = replica.acceptedBallot(message.slot);
        if (held === undefined || compareBallots(held, message.ballot) !== 0) {
          this.fail("invariantA", `invariant A: ${id} acknowledged slot ${message.slot} at ${ballotKey(message.ballot)} to ${to}, holding ${held === undefined ? "no vote" : `a vote at ${ballotKey(held)}`}`);
        }
      } else if (message.kind === "accept") {
        this.noteProposal(id, message.slot, message.ballot, message.value);
      } else if (message.kind === "reply") {
        this.noteReply(id, message, requestOf(message.client, message.id));
      }
    }
  }

  private noteValue(id: string, slot: number, value: LogValue, how: string): void {
    const printed = printLogValue(value);
    const known = this.seen.values.get(slot);
    if (known === undefined) this.write().values.set(slot, printed);
    else if (known !== printed) this.fail("agreement", `agreement: ${id} ${how} slot ${slot} as ${clip(printed)}, but it is ${clip(known)}`);
  }

  private noteState(id: string, slot: number, encoded: string): void {
    const known = this.seen.states.get(slot);
    if (known === undefined) this.write().states.set(slot, encoded);
    else if (known !== encoded) this.fail("agreement", `agreement: ${id}'s cell state after slot ${slot} differs from another replica's`);
  }

  private noteChosen(id: string, chosen: ChosenAtBallot): void {
    this.counts.chosen++;
    const value = printLogValue(chosen.value);
    this.noteValue(id, chosen.slot, chosen.value, "chose");
    const known = this.seen.chosenAt.get(chosen.slot);
    if (known === undefined || compareBallots(chosen.ballot, known.ballot) < 0) this.write().chosenAt.set(chosen.slot, { ballot: chosen.ballot, value });
    for (const proposal of this.seen.proposals.get(chosen.slot)?.values() ?? []) {
      if (compareBallots(proposal.ballot, chosen.ballot) > 0 && proposal.value !== value) {
        this.fail("p2c", `P2c: slot ${chosen.slot} was chosen at ${ballotKey(chosen.ballot)} by ${id} as ${clip(value)}, but ${ballotKey(proposal.ballot)} proposed ${clip(proposal.value)}`);
      }
    }
  }

  private noteProposal(id: string, slot: number, ballot: Ballot, value: LogValue): void {
    const printed = printLogValue(value);
    const key = ballotKey(ballot);
    const known = this.seen.proposals.get(slot)?.get(key);
    if (known === undefined) {
      const proposals = this.write().proposals;
      let bySlot = proposals.get(slot);
      if (bySlot === undefined) proposals.set(slot, (bySlot = new Map()));
      bySlot.set(key, { ballot, value: printed });
    } else if (known.value !== printed) {
      this.fail("p2c", `P2c: ${id} proposed two values for slot ${slot} at ${key}: ${clip(known.value)} and ${clip(printed)}`);
    }
    const chosen = this.seen.chosenAt.get(slot);
    if (chosen !== undefined && compareBallots(ballot, chosen.ballot) > 0 && chosen.value !== printed) {
      this.fail("p2c", `P2c: ${id} proposed into slot ${slot} at ${key} ${clip(printed)}, but it was chosen at ${ballotKey(chosen.ballot)} as ${clip(chosen.value)}`);
    }
  }

  /** Applies a slot to the reference the first time any replica applies it, and checks what it carried out. */
  private noteExecution(id: string, slot: number, value: LogValue, executed: readonly boolean[]): void {
    if (slot <= this.reference.applied) return;
    if (slot !== this.reference.applied + 1) {
      this.fail("harness", `explorer: ${id} applied slot ${slot} first, but the reference is at ${this.reference.applied}`);
      return;
    }
    if (this.referenceShared) {
      this.reference = cloneDeep(this.reference, () => false);
      this.referenceShared = false;
    }
    const reference = this.reference;
    const results = reference.apply(slot, value, { lruSessions: this.lruSessions });
    results.forEach(({ command, result, executed: carriedOut }, index) => {
      if (executed[index] !== carriedOut) this.fail("harness", `determinism: ${id} ${executed[index] ? "carried out" : "skipped"} command ${index} of slot ${slot}, the log says otherwise`);
      if (command.session !== 0) {
        this.write().acked.set(command.session, Math.max(this.seen.acked.get(command.session) ?? 0, command.acked));
      }
      if (!carriedOut) return;
      if (command.op.kind === "openSession") {
        if (result.status === "session") {
          const key = `${command.op.client}:${command.op.nonce}`;
          this.write().opened.set(key, [...(this.seen.opened.get(key) ?? []), result.session]);
        }
        return;
      }
      this.counts.carried++;
      const key = `${command.session}#${command.seq}`;
      const before = this.seen.carried.get(key);
      if (before !== undefined) this.fail("exactlyOnce", `exactly once: session ${command.session} command ${command.seq} was carried out at slot ${before.slot} and again at slot ${slot} (by ${id})`);
      else if (this.seen.refused.has(key)) this.fail("exactlyOnce", `exactly once: session ${command.session} command ${command.seq} was refused for good, then carried out at slot ${slot} (by ${id})`);
      this.write().carried.set(key, { slot, result });
    });
    for (const { command, result } of results) {
      const session = result.status === "session" ? result.session : command.session;
      const used = reference.sessionFor(session)?.usedAt;
      if (used !== undefined) this.write().usedAt.set(session, used);
    }
  }

  private noteReply(id: string, reply: ClientReply, request: SentRequest | undefined): void {
    const outcome = reply.outcome;
    if (outcome.kind !== "done") return;
    this.counts.replies++;
    if (request === undefined) {
      this.fail("harness", `explorer: ${id} answered ${reply.client}#${reply.id}, which nobody sent`);
      return;
    }
    const result = outcome.result;
    const op = request.op;
    if (op.kind === "openSession") {
      if (result.status === "session") {
        if (!(this.seen.opened.get(`${op.client}:${op.nonce}`) ?? []).includes(result.session)) {
          this.fail("replies", `replies: ${id} answered ${reply.client}'s open with session ${result.session}, which the log never opened for it`);
        }
      } else if (!(result.status === "rejected" && result.reason === "sessionsFull")) {
        this.fail("replies", `replies: ${id} answered ${reply.client}'s open with ${clip(printData(result))}`);
      }
      return;
    }
    const key = `${request.session}#${request.seq}`;
    const carried = this.seen.carried.get(key);
    const refusal = result.status === "rejected" ? result.reason : null;
    if (carried !== undefined) {
      // A retry answered from its session names its own slot or the first one: either is at or
      // after the slot that carried it out, which is what a client's later reads rely on.
      if (sameData(result, carried.result) && outcome.slot >= carried.slot) return;
      // The client acknowledged the answer already (it has moved past this command), or the session ran out its time.
      if (refusal === "staleRequest" && (this.seen.acked.get(request.session) ?? 0) > request.seq) return;
      if (refusal === "sessionExpired" && this.reference.time - (this.seen.usedAt.get(request.session) ?? Infinity) > this.reference.sessionTtlMs) return;
      this.fail("replies", `replies: ${id} answered session ${request.session} command ${request.seq} with ${clip(printData(result))} at slot ${outcome.slot}; it was carried out at slot ${carried.slot} with ${clip(printData(carried.result))}`);
      return;
    }
    if (refusal === "staleRequest" || refusal === "sessionExpired") {
      this.write().refused.add(key);
      return;
    }
    if (refusal === "tooManyPending") return;
    this.fail("replies", `replies: ${id} answered session ${request.session} command ${request.seq} with ${clip(printData(result))}, but the log never carried it out`);
  }
}
