// Simulated clients: each runs one operation at a time against its cell, in a session it
// opens through the log, retries with exponential backoff and jitter on timeouts, follows
// redirects, and records what it saw. Some are long-lived; many (the churn) come, do an
// operation or two, and go, some closing their session and some simply vanishing, so that
// the cell's session table fills and sessions expire while late copies are still about.

import type { HistoryRecorder } from "../check/recorder.ts";
import type { OpId } from "../check/operation.ts";
import type { TxResult } from "../core/kv.ts";
import type { CellMessage, ClientReply, Command, CommandResult, ConfigChange, Consistency, Operation } from "../core/messages.ts";
import type { Transaction } from "../core/transaction.ts";
import { utf8 } from "../core/value.ts";
import { limits } from "../limits.ts";
import type { Rng } from "./rng.ts";
import type { LeaseGrant } from "./world.ts";

export interface ClientHost {
  now(): number;
  send(from: string, to: string, cell: string, message: CellMessage): void;
  wake(at: number, client: SimClient, token: number): void;
  members(cell: string): readonly string[];
  inFaultPhase(): boolean;
  /** A membership change the admin is about to submit: the new node must host the cell first. */
  prepareChange(cell: string, change: ConfigChange): void;
  configured(cell: string, members: readonly string[]): void;
  /** A membership change the cell answered for good (configured or refused): it can no longer land later. */
  changeSettled(cell: string, change: ConfigChange): void;
  /** The cell size the run was set up with. */
  plannedMembers(): number;
  fail(problem: string): void;
  /** A lease this client was granted, as it counts it: from when it asked, to its own deadline. */
  leaseGranted(cell: string, grant: LeaseGrant): void;
  readonly recorder: HistoryRecorder;
}

export type ClientKind = "regular" | "admin" | "churn" | "auditor" | "leaser";

interface Current {
  readonly op: Operation;
  readonly consistency: Consistency;
  readonly historyId: OpId | null;
  readonly startedAt: number;
}

/** What is on the wire for the current operation: the session's opening, or the command itself. */
interface InFlight {
  readonly id: number;
  readonly command: Command;
  readonly consistency: Consistency;
  sends: number;
  firstSentAt: number;
}

interface Session {
  readonly id: number;
  readonly ttlMs: number;
  nextSeq: number;
}

const plainKeys = ["a", "b", "c", "d"];
const counterKeys = ["n", "m"];
const giveUpAttempts = 3;

export class SimClient {
  private requestId = 0;
  private current: Current | null = null;
  private inFlight: InFlight | null = null;
  private session: Session | null = null;
  private target: string | null = null;
  private leaderGuess: string | null = null;
  private attempt = 0;
  private redirects = 0;
  private token = 0;
  private minApplied = 0;
  private done = 0;
  private pendingSend = false;
  /** Operations given up on, by the request id of their command, so a late reply still tells their outcome. */
  private readonly gaveUp = new Map<number, OpId>();
  finished = false;
  timeouts = 0;
  sessionsOpened = 0;
  sessionsRefused = 0;
  sessionsExpired = 0;
  /** An operator who now and then acts at the same moment as this one. */
  partner: SimClient | null = null;
  /** How fast this client's clock runs against real time (lease holders count on it). */
  clockRate = 1;
  /** When a lease holder may next ask (its lease runs out, or the holder it met may be gone). */
  private leaseWaitMs = 0;

  constructor(
    readonly id: string,
    readonly cell: string,
    private readonly host: ClientHost,
    private readonly rng: Rng,
    private readonly ops: number,
    readonly kind: ClientKind,
  ) {}

  get busy(): boolean {
    return this.current !== null;
  }

  /** Starts the next operation; an admin keeps going only while faults are on. */
  next(): void {
    const host = this.host;
    const admin = this.kind === "admin";
    if (admin ? !host.inFaultPhase() : this.done >= this.ops) {
      this.finish();
      return;
    }
    const now = host.now();
    if (admin) {
      const partner = this.partner;
      if (partner !== null && !partner.busy && !partner.finished && this.rng.chance(0.5)) partner.actNow();
      const change = this.pickChange();
      host.prepareChange(this.cell, change);
      this.current = { op: { kind: "config", change }, consistency: "consistent", historyId: null, startedAt: now };
    } else if (this.kind === "leaser") {
      // Take the lease, or renew it; between tries, wait out what the answer said.
      const ttlMs = 150 + this.rng.int(600);
      this.current = { op: { kind: "lease", action: "acquire", name: "L", holder: this.id, ttlMs }, consistency: "consistent", historyId: null, startedAt: now };
    } else if (this.kind === "churn") {
      // The churn writes keys of its own, outside every recorded scan, and is not recorded:
      // a crowd of concurrent operations would make the history too costly to check, and
      // what the churn must not do (carry a command out twice) is checked directly.
      const tx: Transaction = { reads: [], conditions: [], writes: [{ key: `~${this.id}`, op: "increment", by: 1n }] };
      this.current = { op: { kind: "tx", tx }, consistency: "consistent", historyId: null, startedAt: now };
    } else if (this.rng.chance(0.1)) {
      const tx: Transaction = { reads: this.rng.shuffle(plainKeys).slice(0, 2), conditions: [], writes: [] };
      this.current = { op: { kind: "tx", tx }, consistency: "eventual", historyId: null, startedAt: now };
    } else {
      const tx = this.pickTransaction();
      this.current = { op: { kind: "tx", tx }, consistency: "consistent", historyId: host.recorder.invoke(this.cell, this.id, tx, now), startedAt: now };
    }
    this.target = this.leaderGuess ?? this.rng.pick(host.members(this.cell));
    this.begin();
  }

  /** Starts the next operation at once, cutting short the think time. */
  actNow(): void {
    this.token++;
    this.pendingSend = false;
    this.next();
  }

  /** The final audit: one consistent read of every key, after everything has healed. */
  audit(): void {
    const tx: Transaction = { reads: [...plainKeys, ...counterKeys], conditions: [], writes: [], scan: { start: "", limit: 10, end: "~" } };
    const now = this.host.now();
    this.finished = false;
    this.current = { op: { kind: "tx", tx }, consistency: "consistent", historyId: this.host.recorder.invoke(this.cell, this.id, tx, now), startedAt: now };
    this.target = this.rng.pick(this.host.members(this.cell));
    this.begin();
  }

  /** Sends the current operation: as an eventual read, in the session, or after opening one. */
  private begin(): void {
    const current = this.current;
    if (current === null) return;
    this.attempt = 0;
    this.redirects = 0;
    this.pendingSend = false;
    if (current.consistency === "eventual") this.transmit({ session: 0, seq: 0, acked: 0, op: current.op }, "eventual");
    else if (this.session === null) this.transmit({ session: 0, seq: 0, acked: 0, op: { kind: "openSession", client: this.id, nonce: this.rng.int(0x7fff_ffff) } }, "consistent");
    else this.transmitInSession(this.session, current.op);
  }

  /** One command at a time: it is the lowest this client waits for, so every earlier one is settled (or given up, never to be carried out). */
  private transmitInSession(session: Session, op: Operation): void {
    const seq = session.nextSeq++;
    this.transmit({ session: session.id, seq, acked: seq, op }, "consistent");
  }

  private transmit(command: Command, consistency: Consistency): void {
    this.inFlight = { id: ++this.requestId, command, consistency, sends: 0, firstSentAt: this.host.now() };
    this.sendAttempt();
  }

  private finish(): void {
    this.finished = true;
    this.current = null;
    this.inFlight = null;
    const session = this.session;
    // Half of the churn closes its session on the way out; the rest just vanish, and their
    // sessions wait out their lifetime in the cell's table.
    if (session !== null && this.kind !== "admin" && this.rng.chance(0.5) && this.target !== null) {
      this.host.send(this.id, this.target, this.cell, {
        kind: "request", client: this.id, id: ++this.requestId, session: session.id, seq: session.nextSeq, acked: session.nextSeq++, op: { kind: "closeSession" }, consistency: "consistent", minApplied: this.minApplied, force: false,
      });
      this.session = null;
    }
  }

  private pickChange(): ConfigChange {
    const members = this.host.members(this.cell);
    const all = this.host.members("*");
    const spare = all.filter((n) => !members.includes(n));
    // A member whose node came back with a new identity (its disk was replaced) is repaired
    // first: add the node as it is now, then remove the former identity.
    const former = members.find((m) => !all.includes(m));
    if (former !== undefined) {
      const again = spare.find((n) => n.split("~")[0] === former.split("~")[0]);
      if (again !== undefined && members.length < 9 && this.rng.chance(0.8)) return { kind: "addMember", node: again };
      return { kind: "removeMember", node: former };
    }
    // Wander one member either side of the cell's planned size, one change at a time.
    const target = this.host.plannedMembers();
    const grow = spare.length > 0 && (members.length < target || (members.length === target && this.rng.chance(0.5)));
    if (grow || members.length <= 1) return { kind: "addMember", node: this.rng.pick(spare.length > 0 ? spare : all) };
    return { kind: "removeMember", node: this.rng.pick(members) };
  }

  private pickTransaction(): Transaction {
    const rng = this.rng;
    const key = rng.pick(plainKeys);
    const counter = rng.pick(counterKeys);
    const value = utf8(`${this.id}:${this.requestId + 1}`);
    const roll = rng.int(100);
    if (roll < 20) return { reads: [key], conditions: [], writes: [] };
    if (roll < 25) return { reads: rng.shuffle([...plainKeys, ...counterKeys]).slice(0, 3), conditions: [], writes: [] };
    if (roll < 40) return { reads: [], conditions: [], writes: [{ key, op: "put", value }] };
    if (roll < 50) return { reads: [key], conditions: [{ key, test: "notExists" }], writes: [{ key, op: "put", value }] };
    if (roll < 60) return { reads: [], conditions: [], writes: [{ key: counter, op: "increment", by: BigInt(rng.between(1, 3)) }] };
    if (roll < 65) return { reads: [], conditions: [], writes: [{ key, op: "delete" }] };
    if (roll < 75) {
      const [k1, k2] = rng.shuffle(plainKeys) as [string, string];
      return { reads: [], conditions: [], writes: [{ key: k1, op: "put", value }, { key: k2, op: "put", value }] };
    }
    if (roll < 80) return { reads: [], conditions: [], writes: [], scan: { start: rng.pick(["", "b"]), limit: rng.between(1, 3), end: "~" } };
    if (roll < 90) {
      // The compound read-and-conditional-write: read a counter, write only if it is small.
      return { reads: [counter, key], conditions: [{ key: counter, test: "le", value: BigInt(rng.between(0, 8)) }], writes: [{ key, op: "put", value }] };
    }
    return { reads: [key], conditions: [{ key, test: "exists" }], writes: [{ key, op: "delete" }] };
  }

  private sendAttempt(): void {
    const flight = this.inFlight;
    if (flight === null || this.target === null) return;
    this.token++;
    flight.sends++;
    const force = this.attempt >= 2;
    const { command } = flight;
    this.host.send(this.id, this.target, this.cell, {
      kind: "request", client: this.id, id: flight.id, session: command.session, seq: command.seq, acked: command.acked, op: command.op, consistency: flight.consistency, minApplied: this.minApplied, force,
    });
    const timeout = Math.min(1600, 80 * 2 ** Math.min(this.attempt, 5)) * (0.75 + 0.5 * this.rng.next());
    this.host.wake(this.host.now() + timeout, this, this.token);
  }

  private retryElsewhere(delayMs: number): void {
    const members = this.host.members(this.cell);
    const others = members.filter((m) => m !== this.target);
    this.target = this.rng.pick(others.length > 0 ? others : members);
    this.attempt++;
    if (delayMs <= 0) this.sendAttempt();
    else this.retryLater(delayMs);
  }

  /** A timer: either a backoff ended (send again) or an attempt timed out. */
  wake(token: number): void {
    if (token !== this.token) return;
    if (this.current === null) {
      this.pendingSend = false;
      if (!this.finished) this.next();
      return;
    }
    if (this.pendingSend) {
      this.pendingSend = false;
      this.sendAttempt();
      return;
    }
    this.timeouts++;
    const current = this.current;
    const opening = this.inFlight?.command.op.kind === "openSession";
    if (this.host.inFaultPhase() && this.attempt >= giveUpAttempts && this.rng.chance(0.5) && !opening) {
      this.giveUp(current);
      return;
    }
    this.retryElsewhere(0);
  }

  /** Stops waiting: the outcome is unknown, and the next operation uses the next sequence number. */
  private giveUp(current: Current): void {
    const flight = this.inFlight;
    if (current.historyId !== null) {
      this.host.recorder.timeout(current.historyId, this.host.now());
      if (flight !== null) this.gaveUp.set(flight.id, current.historyId);
    }
    this.done++;
    this.current = null;
    this.inFlight = null;
    this.next();
  }

  onReply(from: string, reply: ClientReply): void {
    const current = this.current;
    const flight = this.inFlight;
    if (current === null || flight === null || reply.id !== flight.id) {
      this.lateReply(reply);
      return;
    }
    const outcome = reply.outcome;
    switch (outcome.kind) {
      case "done":
        this.leaderGuess = from;
        this.minApplied = Math.max(this.minApplied, outcome.slot);
        this.onResult(current, flight, outcome.result);
        return;
      case "read":
        if (outcome.applied < this.minApplied) {
          this.host.fail(`client ${this.id}: eventual read at applied ${outcome.applied} went back before ${this.minApplied}`);
        }
        this.minApplied = Math.max(this.minApplied, outcome.applied);
        this.finishOp();
        return;
      case "redirect":
        this.redirects++;
        if (outcome.leader !== null && outcome.leader !== from) {
          this.leaderGuess = outcome.leader;
          this.target = outcome.leader;
          this.attempt++;
          if (this.redirects > 4) this.retryLater(20);
          else this.sendAttempt();
        } else {
          this.leaderGuess = null;
          this.retryElsewhere(20);
        }
        return;
      case "overloaded":
        this.attempt++;
        this.retryLater(10 * 2 ** Math.min(this.attempt, 6));
        return;
      case "stale":
        this.retryElsewhere(0);
        return;
      case "unavailable":
        this.retryElsewhere(40);
        return;
    }
  }

  private onResult(current: Current, flight: InFlight, result: CommandResult): void {
    const now = this.host.now();
    if (flight.command.op.kind === "openSession") {
      if (result.status === "session") {
        this.sessionsOpened++;
        this.session = { id: result.session, ttlMs: result.ttlMs, nextSeq: 1 };
        this.transmitInSession(this.session, current.op);
      } else if (result.status === "rejected" && result.reason === "sessionsFull") {
        this.sessionsRefused++;
        this.attempt++;
        this.retryLater(20 * 2 ** Math.min(this.attempt, 5));
      } else {
        this.host.fail(`client ${this.id}: opening a session was answered ${JSON.stringify(result.status)}`);
      }
      return;
    }
    if (result.status === "rejected" && result.reason === "sessionExpired") {
      this.sessionsExpired++;
      const session = this.session;
      this.session = null;
      // Sent once and refused well within the session's lifetime: never applied, so it is
      // safe to send again in a new session. Otherwise its outcome is unknown.
      if (flight.sends === 1 && session !== null && now - flight.firstSentAt < session.ttlMs / 4) {
        this.begin();
        return;
      }
      this.giveUp(current);
      return;
    }
    if (current.op.kind === "lease") {
      if (result.status !== "lease") {
        this.host.fail(`client ${this.id}: a lease operation was answered ${result.status}`);
      } else if (result.granted) {
        // The holder counts the lease from before it asked (the first send of this command),
        // on its own clock, and only a third of it: no clock runs more than 3x another's.
        const op = current.op;
        const heldMs = op.ttlMs / limits.clockRateRatioMax;
        // It holds the lease from the moment it hears so, until its own deadline (which a
        // late answer, to a retry, may already have passed: then it holds nothing).
        const until = flight.firstSentAt + heldMs / this.clockRate;
        if (until > now) this.host.leaseGranted(this.cell, { name: op.name, holder: this.id, from: now, until });
        this.leaseWaitMs = (heldMs * 0.8) / this.clockRate;
      } else {
        this.leaseWaitMs = Math.max(10, result.remainingMs / 2);
      }
    } else if (current.op.kind === "config") {
      if (result.status === "configured") this.host.configured(this.cell, result.members);
      this.host.changeSettled(this.cell, current.op.change);
    } else if (result.status === "configured" || result.status === "session" || result.status === "closed" || result.status === "lease") {
      this.host.fail(`client ${this.id}: a transaction was answered with a ${result.status} result`);
    } else if (current.historyId !== null) {
      this.host.recorder.complete(current.historyId, result, now);
    }
    this.finishOp();
  }

  private retryLater(delayMs: number): void {
    this.token++;
    this.pendingSend = true;
    this.host.wake(this.host.now() + delayMs * (0.5 + this.rng.next()), this, this.token);
  }

  private lateReply(reply: ClientReply): void {
    // A reply to an operation we gave up on still tells us its outcome.
    const historyId = this.gaveUp.get(reply.id);
    if (historyId === undefined || reply.outcome.kind !== "done") return;
    const result = reply.outcome.result;
    if (result.status === "configured" || result.status === "session" || result.status === "closed" || result.status === "lease") return;
    if (result.status === "rejected" && (result.reason === "staleRequest" || result.reason === "sessionExpired")) return;
    this.host.recorder.complete(historyId, result as TxResult, this.host.now());
    this.gaveUp.delete(reply.id);
  }

  private finishOp(): void {
    this.done++;
    this.current = null;
    this.inFlight = null;
    this.token++;
    this.pendingSend = true;
    // Think time before the next operation; an operator changes membership only now and then.
    const pause = this.kind === "admin" ? 100 + this.rng.next() * 400 : this.kind === "leaser" ? this.leaseWaitMs : this.rng.next() * 20;
    this.host.wake(this.host.now() + pause, this, this.token);
  }
}
