// Everything a cell replica exchanges, as plain data. The wire layer turns these into
// authenticated CBOR frames; the core never sees bytes from the network.

import type { TxResult } from "./kv.ts";
import type { Rejection, Transaction } from "./transaction.ts";

/** Ballots order by round, then by node id; the zero ballot precedes every real one. */
export interface Ballot {
  readonly round: number;
  readonly node: string;
}

export type ConfigChange =
  | { readonly kind: "addMember"; readonly node: string }
  | { readonly kind: "removeMember"; readonly node: string };

/**
 * What a client asks of a cell. `openSession` registers a session through the log (its id
 * is the slot that registered it and its place in the batch, so no one can have had it
 * before); every other operation runs in a session; `closeSession` ends one.
 */
export type Operation =
  | { readonly kind: "tx"; readonly tx: Transaction }
  | { readonly kind: "config"; readonly change: ConfigChange }
  /** `client` and `nonce` only tell the asking replica which answer is whose; retries reuse them. */
  | { readonly kind: "openSession"; readonly client: string; readonly nonce: number }
  | { readonly kind: "closeSession" }
  /**
   * A lease: a named, time-bounded lock. `acquire` takes it when it is free or expired, and
   * renews it for its holder; `release` frees it, only for its holder. Time is the cell's
   * log-carried time (see Stamp), never a replica's clock.
   */
  | { readonly kind: "lease"; readonly action: "acquire" | "release"; readonly name: string; readonly holder: string; readonly ttlMs: number };

/**
 * One client request inside a log entry. (session, seq) makes retries idempotent: a session
 * applies each sequence number at most once. `openSession` carries session 0 and seq 0.
 */
export interface Command {
  readonly session: number;
  readonly seq: number;
  /** The lowest sequence number the client still waits for: it has every answer below. */
  readonly acked: number;
  readonly op: Operation;
}

/**
 * A proposer's clock reading, carried in the log: the cell's time advances by the difference
 * between two stamps of the same ballot (one clock, so its offset does not matter), never by
 * a replica's own clock. That is how sessions (and leases) expire the same way everywhere.
 */
export interface Stamp {
  readonly ballot: Ballot;
  /** Milliseconds on the proposer's clock, an integer. */
  readonly time: number;
}

export type LogValue =
  | { readonly kind: "noop" }
  | { readonly kind: "batch"; readonly commands: readonly Command[]; readonly stamp: Stamp };

export interface ConfigResult {
  readonly status: "configured";
  readonly members: readonly string[];
  /** The first slot decided by the new membership. */
  readonly effectiveSlot: number;
}

/** The answer to `openSession`: the new session's id. */
export interface SessionResult {
  readonly status: "session";
  readonly session: number;
  /** The cell's session lifetime: a session unused this long (in the cell's time) expires. */
  readonly ttlMs: number;
}

export interface ClosedResult {
  readonly status: "closed";
}

/**
 * The answer to a lease operation. `granted`: the caller holds the lease for `ttlMs` of the
 * cell's time from this slot (a holder counts its own clock from before it asked, and only a
 * third of that, so that a clock running up to three times faster than another's cannot make
 * two holders; see the client library). Otherwise `holder` has it for `remainingMs` more.
 */
export interface LeaseResult {
  readonly status: "lease";
  readonly name: string;
  readonly granted: boolean;
  /** The holder after this operation; null when the lease is free. */
  readonly holder: string | null;
  readonly remainingMs: number;
}

export type CommandResult = TxResult | ConfigResult | SessionResult | ClosedResult | LeaseResult | Rejection;

export interface AcceptedEntry {
  readonly slot: number;
  readonly ballot: Ballot;
  readonly value: LogValue;
}

export interface ChosenEntry {
  readonly slot: number;
  readonly value: LogValue;
}

export interface CellSnapshot {
  /** The last slot applied to the encoded state. */
  readonly slot: number;
  /** The canonical encoding of the cell state (see core/cellstate.ts). */
  readonly state: Uint8Array;
}

/** Messages between replicas of one cell. */
export type PeerMessage =
  | { readonly kind: "prepare"; readonly ballot: Ballot; readonly from: number }
  /** `compactedThrough`: slots up to here are applied and forgotten as votes; a candidate behind it must learn first. */
  | { readonly kind: "promise"; readonly ballot: Ballot; readonly from: number; readonly accepted: readonly AcceptedEntry[]; readonly compactedThrough: number }
  | { readonly kind: "accept"; readonly ballot: Ballot; readonly slot: number; readonly value: LogValue; readonly chosenThrough: number }
  | { readonly kind: "accepted"; readonly ballot: Ballot; readonly slot: number }
  | { readonly kind: "nack"; readonly ballot: Ballot; readonly promised: Ballot }
  | { readonly kind: "commit"; readonly ballot: Ballot; readonly through: number }
  | { readonly kind: "learn"; readonly from: number }
  | { readonly kind: "teach"; readonly entries: readonly ChosenEntry[]; readonly snapshot?: CellSnapshot; readonly chosenThrough: number };

export type Consistency = "consistent" | "eventual";

export interface ClientRequest {
  readonly kind: "request";
  /** Who to answer: the sender's name, for replies and traces. */
  readonly client: string;
  /** The client's own number for this request, echoed in the reply; retries reuse it. */
  readonly id: number;
  /** 0 only for openSession and for eventually consistent reads. */
  readonly session: number;
  readonly seq: number;
  readonly acked: number;
  readonly op: Operation;
  readonly consistency: Consistency;
  /** For eventual reads: the lowest applied slot this session may be answered from. */
  readonly minApplied: number;
  /** Set by a client that timed out on the leader: run phase 1 even if it looks alive. */
  readonly force: boolean;
}

export type ReplyOutcome =
  | { readonly kind: "done"; readonly result: CommandResult; readonly slot: number }
  | { readonly kind: "read"; readonly result: TxResult; readonly applied: number }
  | { readonly kind: "overloaded" }
  | { readonly kind: "redirect"; readonly leader: string | null }
  | { readonly kind: "stale"; readonly applied: number }
  | { readonly kind: "unavailable"; readonly reason: string }
  /** Answers to node-level requests. */
  | { readonly kind: "node"; readonly identity: string; readonly hosted: HostedCell | null }
  | { readonly kind: "created" }
  | { readonly kind: "joined" }
  | { readonly kind: "exists"; readonly hosted: HostedCell };

export interface ClientReply {
  readonly kind: "reply";
  readonly client: string;
  /** The request's id. */
  readonly id: number;
  readonly outcome: ReplyOutcome;
}

export type CellMessage = PeerMessage | ClientRequest | ClientReply;

/**
 * What a cell is created with, fixed for its life. Members are replica identities
 * (`node~incarnation`: a node's id and its data directory's incarnation), so a node that
 * lost its disk comes back as a stranger, never as a member that once voted.
 */
export interface CellGenesis {
  readonly members: readonly string[];
  /** 16 lowercase hex digits chosen by the creator: two cells of one name are never confused. */
  readonly incarnation: string;
  readonly alpha: number;
  readonly sessionTtlMs: number;
  /** The session table's bound (`limits.sessionsPerCellMax` unless a test makes it tiny). */
  readonly sessionsMax: number;
}

/** What a node says of a cell it hosts. */
export interface HostedCell {
  readonly incarnation: string;
  /** Empty while a joining replica has not learnt the cell yet. */
  readonly members: readonly string[];
  readonly applied: number;
}

/**
 * Node-level requests, answered by the node rather than a replica:
 * - hello: "who are you, and do you host this cell?" (answered `node`);
 * - create: host a new cell's replica with this genesis, if this node is listed in it with
 *   its current identity and hosts no replica of the cell (answered `created` or `exists`);
 * - join: host an empty replica of an existing cell of this incarnation, which a membership
 *   change will add (answered `joined` or `exists`).
 */
export type NodeMessage =
  | { readonly kind: "hello"; readonly client: string; readonly id: number }
  | { readonly kind: "create"; readonly client: string; readonly id: number; readonly genesis: CellGenesis }
  | { readonly kind: "join"; readonly client: string; readonly id: number; readonly incarnation: string };

export type CreateRequest = Extract<NodeMessage, { kind: "create" }>;

/** A message for one cell, as carried between nodes (several share one frame). */
export interface Envelope {
  readonly cell: string;
  readonly message: CellMessage | NodeMessage;
}
