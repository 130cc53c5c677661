// The replicated state of one cell: its key-value store, its membership over slots, and a
// session per client so that a retried command is answered, not applied twice. Everything
// here is a deterministic function of the sequence of applied log entries.

import { limits } from "../limits.ts";
import { assert } from "./assert.ts";
import { ByteReader, ByteWriter, decodeUtf8 } from "./bytes.ts";
import type { KvStore } from "./kv.ts";
import { KvStore as Store } from "./kv.ts";
import type { Command, CommandResult, ConfigChange, LogValue } from "./messages.ts";
import { readResult, writeResult } from "./results.ts";
import { digest, readKv, writeKv } from "./snapshot.ts";
import { reject } from "./transaction.ts";
import { utf8 } from "./value.ts";

/** Members deciding every slot from `from` on, until the next membership. */
export interface Membership {
  readonly from: number;
  readonly members: readonly string[];
}

interface Session {
  readonly seq: number;
  readonly slot: number;
  readonly result: CommandResult;
}

export interface AppliedCommand {
  readonly client: string;
  readonly seq: number;
  readonly result: CommandResult;
  /** True when this command was a retry answered from the session table. */
  readonly duplicate: boolean;
}

const magic = 0x50435331; // "PCS1"
const memberIdPattern = /^[A-Za-z0-9._-]{1,64}$/;

export class CellState {
  private constructor(
    readonly kv: KvStore,
    private appliedSlot: number,
    readonly alpha: number,
    private configs: Membership[],
    private readonly sessions: Map<string, Session>,
  ) {}

  static genesis(members: readonly string[], alpha: number = limits.pipelineDepthDefault): CellState {
    assert(members.length >= 1 && members.length <= limits.cellMembersMax, "genesis: member count out of range");
    assert(new Set(members).size === members.length, "genesis: duplicate member");
    assert(Number.isInteger(alpha) && alpha >= 1 && alpha <= limits.pipelineDepthMax, "genesis: alpha out of range");
    return new CellState(new Store(), 0, alpha, [{ from: 1, members: [...members] }], new Map());
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

  sessionFor(client: string): Session | undefined {
    return this.sessions.get(client);
  }

  apply(slot: number, value: LogValue): AppliedCommand[] {
    assert(slot === this.appliedSlot + 1, `apply: slot ${slot} after ${this.appliedSlot}`);
    const out: AppliedCommand[] = [];
    if (value.kind === "batch") for (const command of value.commands) out.push(this.applyCommand(slot, command));
    this.appliedSlot = slot;
    // Memberships that no longer decide any future slot are dropped.
    while (this.configs.length > 1 && (this.configs[1] as Membership).from <= slot + 1) this.configs.shift();
    return out;
  }

  private applyCommand(slot: number, command: Command): AppliedCommand {
    const { client, seq } = command;
    const session = this.sessions.get(client);
    if (session !== undefined && seq <= session.seq) {
      const result = seq === session.seq ? session.result : reject("staleRequest", `request ${seq} precedes ${session.seq}`);
      return { client, seq, result, duplicate: true };
    }
    const result = command.op.kind === "tx" ? this.kv.apply(command.op.tx) : this.applyChange(slot, command.op.change);
    // Re-inserting keeps the map in least-recently-used order, the same on every replica.
    this.sessions.delete(client);
    this.sessions.set(client, { seq, slot, result });
    if (this.sessions.size > limits.sessionsPerCellMax) {
      const oldest = this.sessions.keys().next().value as string;
      this.sessions.delete(oldest);
    }
    return { client, seq, result, duplicate: false };
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
      if (members.length <= 1) return reject("configInvalid", "cannot remove the last member");
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
    out.u32(magic).u64(this.appliedSlot).u8(this.alpha).u8(this.configs.length);
    for (const config of this.configs) {
      out.u64(config.from).u8(config.members.length);
      for (const member of config.members) out.bytes16(utf8(member));
    }
    out.u16(this.sessions.size);
    for (const [client, session] of this.sessions) {
      out.bytes16(utf8(client)).u64(session.seq).u64(session.slot);
      writeResult(out, session.result);
    }
    writeKv(out, this.kv);
    return out.finish();
  }

  static decode(bytes: Uint8Array): CellState | string {
    const input = new ByteReader(bytes);
    if (input.u32("magic") !== magic) return "not a cell snapshot";
    const applied = input.u64("applied");
    const alpha = input.u8("alpha");
    if (alpha < 1 || alpha > limits.pipelineDepthMax) return "alpha out of range";
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
      if (new Set(members).size !== members.length) return "duplicate member";
      if (configs.length > 0 && from <= (configs[configs.length - 1] as Membership).from) return "memberships out of order";
      configs.push({ from, members });
    }
    const sessionCount = input.u16("session count");
    if (sessionCount > limits.sessionsPerCellMax) return "too many sessions";
    const sessions = new Map<string, Session>();
    for (let i = 0; i < sessionCount && input.error === null; i++) {
      const client = decodeUtf8(input.bytes16(limits.nodeIdBytesMax, "client"));
      const seq = input.u64("seq");
      const slot = input.u64("slot");
      const result = readResult(input);
      if (client === null || result === null || sessions.has(client)) return input.error ?? "invalid session";
      sessions.set(client, { seq, slot, result });
    }
    const kv = readKv(input);
    if (input.error !== null || kv === null) return input.error ?? "invalid key-value state";
    if (input.remaining !== 0) return `${input.remaining} trailing bytes`;
    return new CellState(kv, applied, alpha, configs, sessions);
  }

  digest(): Uint8Array {
    return digest(this.encode());
  }
}
