// The replicated state of one cell: its key-value store, its membership over slots, its
// clock, and its client sessions, so that a retried command is answered, not applied twice.
// Everything here is a deterministic function of the sequence of applied log entries.
//
// Sessions (issue 8: a command applied twice after its session was evicted from an LRU
// table). A session is opened through the log and its id is the slot that opened it and its
// place in the batch, so no one can have had that id before. It lives until it is closed or
// goes unused for `sessionTtlMs` of the cell's time, which only the log advances (see
// Stamp). A command whose session is not in the table is never applied: it is answered
// `sessionExpired`, and since no session ever comes back, it never will be applied. The
// table is bounded; when it is full of live sessions, opening another is refused
// (`sessionsFull`), and nothing live is forgotten to make room.
//
// A session may have several commands in flight (the client pipelines), each applied at
// most once: the session remembers the result of every command it carried out until the
// client acknowledges it, by sending with each command the lowest sequence number it still
// waits for. A copy of a command below that mark is refused (`staleRequest`), so a command
// the client gave up on can never be carried out after the client moved on.

import { limits } from "../limits.ts";
import { assert } from "./assert.ts";
import { ByteReader, ByteWriter, decodeUtf8 } from "./bytes.ts";
import type { KvStore } from "./kv.ts";
import { KvStore as Store } from "./kv.ts";
import type { Command, CommandResult, ConfigChange, LogValue } from "./messages.ts";
import { compareBallots } from "./ballot.ts";
import type { Ballot, LeaseResult, Operation, Stamp } from "./messages.ts";
import { readResult, writeResult } from "./results.ts";
import { digest, readKv, writeKv } from "./snapshot.ts";
import { type Rejection, reject } from "./transaction.ts";
import { utf8 } from "./value.ts";

/** Members deciding every slot from `from` on, until the next membership. */
export interface Membership {
  readonly from: number;
  readonly members: readonly string[];
}

/** What a session remembers of one command it carried out, until the client acknowledges it. */
export interface Remembered {
  readonly slot: number;
  readonly result: CommandResult;
}

export interface Session {
  /**
   * Every command below this sequence number has been answered to the client (the client
   * says so in each command): a late copy of one is refused, never carried out.
   */
  readonly acked: number;
  /** Results of commands carried out at or above `acked`, by sequence number. */
  readonly results: ReadonlyMap<number, Remembered>;
  /** The cell's time when the session was last used. */
  readonly usedAt: number;
  /** Who opened it ("client:nonce"): a retried open gets this session again, not another. */
  readonly opener: string;
}

export interface AppliedCommand {
  readonly command: Command;
  readonly result: CommandResult;
  /** False when this command was not carried out: a retry answered from its session, or a command refused for its session. */
  readonly executed: boolean;
}

export interface ApplyOptions {
  /** The lruSessions mutation (core/mutations.ts): forget the oldest session when full, and revive unknown ones. Tests only. */
  readonly lruSessions?: boolean;
}

/** A genesis's settings; tests leave most to their defaults. */
export interface CellSettings {
  readonly incarnation?: string;
  readonly alpha?: number;
  readonly sessionTtlMs?: number;
  readonly sessionsMax?: number;
}

/** The incarnation of a cell whose creator named none (tests). */
export const defaultIncarnation = "0000000000000000";
/** The slot from which the genesis membership decides. */
const genesisFrom = 1;
export const incarnationPattern = /^[0-9a-f]{16}$/;

const magic = 0x50435334; // "PCS4"
const memberIdPattern = /^[A-Za-z0-9._-]{1,64}(~[0-9a-f]{16})?$/;
/** Session ids pack the opening slot and the command's place in its batch (limits checks it fits 6 bits). */
const sessionSlotFactor = 64;

/** The slot that opened a session. */
export function sessionSlot(session: number): number {
  return Math.floor(session / sessionSlotFactor);
}

/** A lease held: by whom, and until what time of the cell's clock. */
export interface Lease {
  readonly holder: string;
  readonly expiresAt: number;
}

interface Clock {
  /** The cell's time, in milliseconds since its first stamp. */
  time: number;
  /** The last stamp applied. */
  last: Stamp | null;
}

/** Why a genesis from outside (a frame, a file) cannot be used, or null when it can. */
export function genesisProblem(genesis: { readonly members: readonly string[]; readonly incarnation: string; readonly alpha: number; readonly sessionTtlMs: number; readonly sessionsMax: number }): string | null {
  const { members, incarnation, alpha, sessionTtlMs, sessionsMax } = genesis;
  if (members.length < 1 || members.length > limits.cellMembersMax) return `a cell has 1 to ${limits.cellMembersMax} members`;
  if (new Set(members).size !== members.length) return "a member is listed twice";
  const bad = members.find((m) => !memberIdPattern.test(m));
  if (bad !== undefined) return `invalid member ${JSON.stringify(bad)}`;
  if (!incarnationPattern.test(incarnation)) return "the incarnation must be 16 lowercase hex digits";
  if (!Number.isInteger(alpha) || alpha < 1 || alpha > limits.pipelineDepthMax) return `alpha must be 1 to ${limits.pipelineDepthMax}`;
  if (!Number.isInteger(sessionTtlMs) || sessionTtlMs < limits.sessionTtlMsMin || sessionTtlMs > limits.sessionTtlMsMax) return `the session lifetime must be ${limits.sessionTtlMsMin} to ${limits.sessionTtlMsMax} ms`;
  if (!Number.isInteger(sessionsMax) || sessionsMax < 1 || sessionsMax > limits.sessionsPerCellMax) return `the session table holds 1 to ${limits.sessionsPerCellMax}`;
  return null;
}

export class CellState {
  private constructor(
    readonly kv: KvStore,
    private appliedSlot: number,
    readonly incarnation: string,
    readonly alpha: number,
    readonly sessionTtlMs: number,
    readonly sessionsMax: number,
    private configs: Membership[],
    /** In order of last use, least recent first: the front is always the next to expire. */
    private readonly sessions: Map<number, Session>,
    private readonly clock: Clock,
    private readonly leases: Map<string, Lease>,
  ) {}

  static genesis(members: readonly string[], settings: CellSettings = {}): CellState {
    const incarnation = settings.incarnation ?? defaultIncarnation;
    const alpha = settings.alpha ?? limits.pipelineDepthDefault;
    const sessionTtlMs = settings.sessionTtlMs ?? limits.sessionTtlMsDefault;
    const sessionsMax = settings.sessionsMax ?? limits.sessionsPerCellMax;
    assert(incarnationPattern.test(incarnation), "genesis: invalid incarnation");
    assert(Number.isInteger(sessionsMax) && sessionsMax >= 1 && sessionsMax <= limits.sessionsPerCellMax, "genesis: session table size out of range");
    assert(members.length >= 1 && members.length <= limits.cellMembersMax, "genesis: member count out of range");
    assert(new Set(members).size === members.length, "genesis: duplicate member");
    assert(members.every((m) => memberIdPattern.test(m)), "genesis: invalid member id");
    assert(Number.isInteger(alpha) && alpha >= 1 && alpha <= limits.pipelineDepthMax, "genesis: alpha out of range");
    assert(Number.isInteger(sessionTtlMs) && sessionTtlMs >= limits.sessionTtlMsMin && sessionTtlMs <= limits.sessionTtlMsMax, "genesis: session lifetime out of range");
    return new CellState(new Store(), 0, incarnation, alpha, sessionTtlMs, sessionsMax, [{ from: genesisFrom, members: [...members] }], new Map(), { time: 0, last: null }, new Map());
  }

  /** `summary` of the state `genesis` would make, without making it. */
  static genesisSummary(members: readonly string[], settings: CellSettings = {}): SnapshotSummary {
    return { applied: 0, incarnation: settings.incarnation ?? defaultIncarnation, members, membershipSlot: latestMembershipSlot([{ from: genesisFrom, members }], settings.alpha ?? limits.pipelineDepthDefault) };
  }

  /** The cell's time: milliseconds of stamped log, advanced only by applying slots. */
  get time(): number {
    return this.clock.time;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** The last slot applied to this state. */
  get applied(): number {
    return this.appliedSlot;
  }

  /**
   * Members that decide `slot`, or null when that is not known yet: a change applied at
   * slot i takes effect at i + alpha, so only slots up to applied + alpha are known.
   */
  membersFor(slot: number): readonly string[] | null {
    if (slot <= this.appliedSlot || slot > this.appliedSlot + this.alpha) return null;
    let found: readonly string[] | null = null;
    for (const config of this.configs) if (config.from <= slot) found = config.members;
    return found;
  }

  /** Every membership that decides a slot in the window (applied, applied + alpha]. */
  windowMemberships(): readonly Membership[] {
    const last = this.appliedSlot + this.alpha;
    return this.configs.filter((c, i) => c.from <= last && (this.configs[i + 1]?.from ?? Infinity) > this.appliedSlot + 1);
  }

  /** The latest membership, including one that has not taken effect yet. */
  latestMembers(): readonly string[] {
    return (this.configs[this.configs.length - 1] as Membership).members;
  }

  /**
   * The slot at which the latest membership change was applied (0 for the genesis
   * membership): a change applied at slot i takes effect at i + alpha. Every replica derives
   * it from the log alike, so discovery orders a cell's entries by it.
   */
  latestMembershipSlot(): number {
    return latestMembershipSlot(this.configs, this.alpha);
  }

  sessionFor(session: number): Session | undefined {
    return this.sessions.get(session);
  }

  /**
   * What a replica at this state can say about a command before it reaches the log: the
   * answer to a retry, or `sessionExpired` for a session opened at or before the applied
   * slot that is gone (sessions never come back). Null when only the log can tell.
   */
  precheck(session: number, seq: number): { readonly result: CommandResult; readonly slot: number } | null {
    const known = this.sessions.get(session);
    if (known !== undefined) {
      if (seq < known.acked) return { result: stale(seq, known.acked), slot: this.appliedSlot };
      const remembered = known.results.get(seq);
      return remembered === undefined ? null : remembered;
    }
    if (sessionSlot(session) <= this.appliedSlot) return { result: expired(session), slot: this.appliedSlot };
    return null;
  }

  apply(slot: number, value: LogValue, options: ApplyOptions = {}): AppliedCommand[] {
    assert(slot === this.appliedSlot + 1, `apply: slot ${slot} after ${this.appliedSlot}`);
    const out: AppliedCommand[] = [];
    if (value.kind === "batch") {
      this.advanceClock(value.stamp);
      this.expireSessions();
      value.commands.forEach((command, index) => out.push(this.applyCommand(slot, index, command, options)));
    }
    this.appliedSlot = slot;
    // Memberships that no longer decide any future slot are dropped.
    while (this.configs.length > 1 && (this.configs[1] as Membership).from <= slot + 1) this.configs.shift();
    return out;
  }

  /**
   * Time moves by the distance between two stamps of one ballot: one clock, whatever its
   * offset. Only the highest ballot seen counts: a stamp of a lower ballot (a stale leader's
   * proposal, chosen late through recovery) moves nothing, so no stretch of real time is
   * counted twice by two leaders, and the cell's time runs no faster than its fastest clock.
   */
  private advanceClock(stamp: Stamp): void {
    const last = this.clock.last;
    if (last !== null) {
      const order = compareBallots(stamp.ballot, last.ballot);
      if (order < 0) return;
      if (order === 0) {
        if (stamp.time < last.time) return; // Never backwards; keep the later reading.
        this.clock.time += stamp.time - last.time;
      }
    }
    this.clock.last = stamp;
  }

  private expireSessions(): void {
    const horizon = this.clock.time - this.sessionTtlMs;
    for (const [id, session] of this.sessions) {
      if (session.usedAt >= horizon) break;
      this.sessions.delete(id);
    }
  }

  private applyCommand(slot: number, index: number, command: Command, options: ApplyOptions): AppliedCommand {
    const op = command.op;
    if (op.kind === "openSession") {
      // A retry of an open whose answer was lost: the same session, or lost replies would
      // fill the table with sessions nobody uses.
      const opener = `${op.client}:${op.nonce}`;
      for (const [id, session] of this.sessions) {
        if (session.opener === opener) return { command, result: { status: "session", session: id, ttlMs: this.sessionTtlMs }, executed: false };
      }
      if (this.sessions.size >= this.sessionsMax) {
        if (options.lruSessions !== true) {
          const oldest = this.sessions.values().next().value as Session;
          const wait = oldest.usedAt + this.sessionTtlMs - this.clock.time;
          return { command, result: reject("sessionsFull", `${this.sessions.size} sessions are open; the oldest expires in ${wait} ms unless used`), executed: false };
        }
        this.sessions.delete(this.sessions.keys().next().value as number);
      }
      const id = slot * sessionSlotFactor + index;
      this.sessions.set(id, { acked: 1, results: new Map(), usedAt: this.clock.time, opener });
      return { command, result: { status: "session", session: id, ttlMs: this.sessionTtlMs }, executed: true };
    }
    let session = this.sessions.get(command.session);
    if (session === undefined) {
      if (options.lruSessions !== true || command.session === 0) return { command, result: expired(command.session), executed: false };
      session = { acked: command.acked, results: new Map(), usedAt: this.clock.time, opener: "" };
    }
    // Re-inserting keeps the table in order of last use, the same on every replica.
    this.sessions.delete(command.session);
    const acked = Math.max(session.acked, command.acked);
    const results = new Map(session.results);
    for (const seq of results.keys()) if (seq < acked) results.delete(seq);
    const opener = session.opener;
    const keep = (): void => {
      this.sessions.set(command.session, { acked, results, usedAt: this.clock.time, opener });
      if (this.sessions.size > this.sessionsMax) this.sessions.delete(this.sessions.keys().next().value as number); // lruSessions only
    };
    const remembered = results.get(command.seq);
    if (command.seq < acked || remembered !== undefined) {
      keep();
      return { command, result: remembered?.result ?? stale(command.seq, acked), executed: false };
    }
    if (op.kind === "closeSession") return { command, result: { status: "closed" }, executed: true };
    // A session takes commands within a window of `limits.sessionPendingMax` sequence
    // numbers from the lowest one its client still waits for, so the answers it keeps are
    // bounded. The client library never sends past the window. A command past it is refused,
    // and the refusal settles nothing: once the window moves, a copy of that command is
    // carried out like any other (found by the nemesis: a refusal the client took as final
    // was overturned). So only a client that breaks the rule ever sees `tooManyPending`.
    if (command.seq >= acked + limits.sessionPendingMax) {
      keep();
      return { command, result: reject("tooManyPending", `command ${command.seq} is past the session's window of ${limits.sessionPendingMax} from ${acked}; its outcome is not settled by this answer`), executed: false };
    }
    const result = op.kind === "tx" ? this.kv.apply(op.tx) : op.kind === "lease" ? this.applyLease(op) : this.applyChange(slot, op.change);
    results.set(command.seq, { slot, result });
    keep();
    return { command, result, executed: true };
  }

  /** The lease named, while it is held (an expired one is as good as free). */
  leaseFor(name: string): Lease | undefined {
    const lease = this.leases.get(name);
    return lease !== undefined && lease.expiresAt > this.clock.time ? lease : undefined;
  }

  private applyLease(op: Extract<Operation, { kind: "lease" }>): CommandResult {
    const problem = leaseProblem(op);
    if (problem !== null) return reject("leaseInvalid", problem);
    const now = this.clock.time;
    const held = this.leaseFor(op.name);
    const answer = (granted: boolean, lease: Lease | undefined): LeaseResult => ({
      status: "lease", name: op.name, granted, holder: lease?.holder ?? null, remainingMs: lease === undefined ? 0 : lease.expiresAt - now,
    });
    if (op.action === "release") {
      if (held !== undefined && held.holder === op.holder) {
        this.leases.delete(op.name);
        return answer(false, undefined);
      }
      return answer(false, held);
    }
    if (held !== undefined && held.holder !== op.holder) return answer(false, held);
    if (held === undefined && !this.leases.has(op.name) && this.leases.size >= limits.leasesPerCellMax) {
      for (const [name, lease] of this.leases) if (lease.expiresAt <= now) this.leases.delete(name);
      if (this.leases.size >= limits.leasesPerCellMax) return reject("leasesFull", `${this.leases.size} leases are held`);
    }
    const lease: Lease = { holder: op.holder, expiresAt: now + op.ttlMs };
    this.leases.set(op.name, lease);
    return answer(true, lease);
  }

  private applyChange(slot: number, change: ConfigChange): CommandResult {
    const members = this.latestMembers();
    if (!memberIdPattern.test(change.node)) return reject("configInvalid", `invalid node id ${JSON.stringify(change.node)}`);
    let next: string[];
    if (change.kind === "addMember") {
      if (members.includes(change.node)) return reject("configInvalid", `${change.node} is already a member`);
      if (members.length >= limits.cellMembersMax) return reject("configInvalid", `a cell has at most ${limits.cellMembersMax} members`);
      next = [...members, change.node];
    } else {
      if (!members.includes(change.node)) return reject("configInvalid", `${change.node} is not a member`);
      // A cell of two needs both of its members, so it tolerates no more failures than a
      // cell of one, and a cell of one loses what it acknowledged with one disk. So no cell
      // shrinks below three by removal (a smaller genesis, for a test or a one-node colony,
      // is its creator's choice): to replace a member of a cell of three, add first.
      if (members.length <= limits.cellMembersMin) return reject("configInvalid", `a cell keeps at least ${limits.cellMembersMin} members; add the replacement before removing ${change.node}`);
      next = members.filter((m) => m !== change.node);
    }
    const from = slot + this.alpha;
    // One membership per slot: a second change in the same batch would take effect in the same
    // slot as the first, moving two nodes at once.
    if ((this.configs[this.configs.length - 1] as Membership).from >= from) return reject("configInvalid", "another membership change was applied in this slot; retry");
    this.configs.push({ from, members: next });
    return { status: "configured", members: next, effectiveSlot: from };
  }

  encode(): Uint8Array {
    const out = new ByteWriter(256 + this.kv.bytes);
    out.u32(magic).u64(this.appliedSlot).bytes16(utf8(this.incarnation)).u8(this.alpha).u32(this.sessionTtlMs).u16(this.sessionsMax).u8(this.configs.length);
    for (const config of this.configs) {
      out.u64(config.from).u8(config.members.length);
      for (const member of config.members) out.bytes16(utf8(member));
    }
    out.u64(this.clock.time);
    const last = this.clock.last;
    if (last === null) out.u8(0);
    // A proposer's clock may read below zero (only differences count): sign, then magnitude.
    else out.u8(1).u64(last.ballot.round).bytes16(utf8(last.ballot.node)).u8(last.time < 0 ? 1 : 0).u64(Math.abs(last.time));
    out.u16(this.sessions.size);
    for (const [id, session] of this.sessions) {
      out.u64(id).u64(session.usedAt).u64(session.acked).bytes16(utf8(session.opener)).u16(session.results.size);
      for (const [seq, { slot, result }] of session.results) {
        out.u64(seq).u64(slot);
        writeResult(out, result);
      }
    }
    out.u16(this.leases.size);
    for (const [name, lease] of this.leases) out.bytes16(utf8(name)).bytes16(utf8(lease.holder)).u64(lease.expiresAt);
    writeKv(out, this.kv);
    return out.finish();
  }

  /**
   * What a snapshot says of the cell's place, read from its header alone: the sessions, leases
   * and keys are not decoded. For a node's idle cells, which discovery audits in turn.
   */
  static summary(bytes: Uint8Array): SnapshotSummary | string {
    const header = readHeader(new ByteReader(bytes));
    if (typeof header === "string") return header;
    const { applied, incarnation, alpha, configs } = header;
    return { applied, incarnation, members: (configs[configs.length - 1] as Membership).members, membershipSlot: latestMembershipSlot(configs, alpha) };
  }

  static decode(bytes: Uint8Array): CellState | string {
    const input = new ByteReader(bytes);
    const header = readHeader(input);
    if (typeof header === "string") return header;
    const { applied, incarnation, alpha, sessionTtlMs, sessionsMax, configs } = header;
    const time = input.u64("time");
    let last: Stamp | null = null;
    if (input.u8("stamp presence") === 1) {
      const round = input.u64("stamp round");
      const node = decodeUtf8(input.bytes16(limits.nodeIdBytesMax, "stamp node"));
      const negative = input.u8("stamp sign") === 1;
      const magnitude = input.u64("stamp time");
      const at = negative ? -magnitude : magnitude;
      if (node === null) return "invalid stamp";
      const ballot: Ballot = { round, node };
      last = { ballot, time: at };
    }
    const sessionCount = input.u16("session count");
    if (sessionCount > sessionsMax) return "too many sessions";
    const sessions = new Map<number, Session>();
    let usedBefore = 0;
    for (let i = 0; i < sessionCount && input.error === null; i++) {
      const id = input.u64("session");
      const usedAt = input.u64("used at");
      const acked = input.u64("acked");
      const opener = decodeUtf8(input.bytes16(limits.nodeIdBytesMax + 12, "opener"));
      const count = input.u16("result count");
      if (opener === null) return "invalid session opener";
      if (sessions.has(id) || sessionSlot(id) > applied || count > limits.sessionPendingMax) return input.error ?? "invalid session";
      if (usedAt < usedBefore || usedAt > time) return "sessions out of order";
      usedBefore = usedAt;
      const results = new Map<number, Remembered>();
      for (let j = 0; j < count && input.error === null; j++) {
        const seq = input.u64("seq");
        const slot = input.u64("slot");
        const result = readResult(input);
        if (result === null || seq < acked || seq >= acked + limits.sessionPendingMax || slot > applied || results.has(seq)) return input.error ?? "invalid session result";
        results.set(seq, { slot, result });
      }
      sessions.set(id, { acked, results, usedAt, opener });
    }
    const leaseCount = input.u16("lease count");
    if (leaseCount > limits.leasesPerCellMax) return "too many leases";
    const leases = new Map<string, Lease>();
    for (let i = 0; i < leaseCount && input.error === null; i++) {
      const name = decodeUtf8(input.bytes16(limits.leaseNameBytesMax, "lease name"));
      const holder = decodeUtf8(input.bytes16(limits.nodeIdBytesMax, "lease holder"));
      const expiresAt = input.u64("lease expiry");
      if (name === null || holder === null || leases.has(name)) return input.error ?? "invalid lease";
      leases.set(name, { holder, expiresAt });
    }
    const kv = readKv(input);
    if (input.error !== null || kv === null) return input.error ?? "invalid key-value state";
    if (input.remaining !== 0) return `${input.remaining} trailing bytes`;
    return new CellState(kv, applied, incarnation, alpha, sessionTtlMs, sessionsMax, configs, sessions, { time, last }, leases);
  }

  digest(): Uint8Array {
    return digest(this.encode());
  }
}

/** Why a lease operation from outside cannot be applied, or null. */
export function leaseProblem(op: { readonly name: string; readonly holder: string; readonly ttlMs: number }): string | null {
  const nameBytes = utf8(op.name).length;
  if (nameBytes < 1 || nameBytes > limits.leaseNameBytesMax || decodeUtf8(utf8(op.name)) !== op.name) return `a lease name is 1 to ${limits.leaseNameBytesMax} bytes of UTF-8`;
  if (!memberIdPattern.test(op.holder) && !/^[A-Za-z0-9._-]{1,64}$/.test(op.holder)) return "a lease holder is 1 to 64 of [A-Za-z0-9._-]";
  if (!Number.isInteger(op.ttlMs) || op.ttlMs < limits.leaseTtlMsMin || op.ttlMs > limits.leaseTtlMsMax) return `a lease lasts ${limits.leaseTtlMsMin} to ${limits.leaseTtlMsMax} ms`;
  return null;
}

function stale(seq: number, acked: number): Rejection {
  return reject("staleRequest", `command ${seq} was answered already (the client waits for ${acked} and later)`);
}

function expired(session: number): Rejection {
  return reject("sessionExpired", session === 0 ? "no session: open one first" : `session ${session} is closed or expired`);
}

/** What `CellState.summary` reads of a snapshot. */
export interface SnapshotSummary {
  readonly applied: number;
  readonly incarnation: string;
  /** The latest membership, including one that has not taken effect yet. */
  readonly members: readonly string[];
  /** The slot at which the latest membership change was applied (see latestMembershipSlot). */
  readonly membershipSlot: number;
}

function latestMembershipSlot(configs: readonly Membership[], alpha: number): number {
  return Math.max(0, (configs[configs.length - 1] as Membership).from - alpha);
}

/** What a snapshot's header says (everything before the clock), or why it cannot be read. */
interface SnapshotHeader {
  readonly applied: number;
  readonly incarnation: string;
  readonly alpha: number;
  readonly sessionTtlMs: number;
  readonly sessionsMax: number;
  readonly configs: Membership[];
}

/** For a cell's few members, cheaper than building a Set (the audit reads a million headers). */
function hasDuplicate(members: readonly string[]): boolean {
  for (let i = 1; i < members.length; i++) for (let j = 0; j < i; j++) if (members[i] === members[j]) return true;
  return false;
}

function readHeader(input: ByteReader): SnapshotHeader | string {
  if (input.u32("magic") !== magic) return "not a cell snapshot";
  const applied = input.u64("applied");
  const incarnation = decodeUtf8(input.bytes16(16, "incarnation"));
  if (incarnation === null || !incarnationPattern.test(incarnation)) return "invalid incarnation";
  const alpha = input.u8("alpha");
  if (alpha < 1 || alpha > limits.pipelineDepthMax) return "alpha out of range";
  const sessionTtlMs = input.u32("session lifetime");
  if (sessionTtlMs < limits.sessionTtlMsMin || sessionTtlMs > limits.sessionTtlMsMax) return "session lifetime out of range";
  const sessionsMax = input.u16("session table size");
  if (sessionsMax < 1 || sessionsMax > limits.sessionsPerCellMax) return "session table size out of range";
  const configCount = input.u8("config count");
  if (configCount < 1 || configCount > limits.pipelineDepthMax + 1) return "config count out of range";
  const configs: Membership[] = [];
  for (let i = 0; i < configCount && input.error === null; i++) {
    const from = input.u64("from");
    const count = input.u8("member count");
    if (count < 1 || count > limits.cellMembersMax) return "member count out of range";
    const members: string[] = [];
    for (let j = 0; j < count; j++) {
      const member = decodeUtf8(input.bytes16(limits.nodeIdBytesMax, "member"));
      if (member === null || !memberIdPattern.test(member)) return "invalid member id";
      members.push(member);
    }
    if (hasDuplicate(members)) return "duplicate member";
    if (configs.length > 0 && from <= (configs[configs.length - 1] as Membership).from) return "memberships out of order";
    configs.push({ from, members });
  }
  if (input.error !== null) return input.error;
  return { applied, incarnation, alpha, sessionTtlMs, sessionsMax, configs };
}
