// Least privilege on the wire: which role may send which message, from which sender, to
// whom. Pure functions of an authenticated frame and the topology facts the caller passes;
// the node and the client call them on every frame after the MAC and before anything else.
//
// At a node:
// - under its color's node key, from a node of its color: peer messages only;
// - under the client key, from a client id: data requests (op `tx`) only;
// - under the control key, from a client id: data requests, membership changes and `create`.
// A client or control frame that claims a node's id, or carries what its role may not send,
// is `wrongRole`; a node frame from a node of another color is `wrongColor`, and from an id
// that is no node of the topology, `unknownNode`. A request, `hello`, `create` or `join` must
// name its frame's sender as the client (`wrongSender`), so sessions and replies follow the sender.
// At a client: replies only, under the client or control key, from a node it knows.
//
// Discovery messages (a body's `d`) are checked the same way: gossip only under the node key
// from a node of the receiver's color (it carries the cell directory and the peer table);
// lookups under the client or control key (any client may ask where a cell is); a lookup
// answer never to a node, and at a client only as the answer of a node it knows. A node's
// peer table (which nodes gossip holds alive, and their addresses) goes only to the control
// plane: a peers request only under the control key, and its answer is accepted only under it.

import type { CellMessage, Envelope, NodeMessage } from "../core/messages.ts";
import { hasIncarnation, isPlainId, nodePart } from "./ids.ts";
import type { Role } from "./keyring.ts";

export type RoleRejectReason = "wrongRole" | "wrongColor" | "unknownNode" | "wrongSender";

export const roleRejectReasons: readonly RoleRejectReason[] = ["wrongRole", "wrongColor", "unknownNode", "wrongSender"];

export type RoleResult = { readonly ok: true } | { readonly ok: false; readonly reason: RoleRejectReason; readonly detail: string };

/** What a message asks of its receiver, which decides the role it needs. */
export type MessageClass = "peer" | "data" | "control" | "reply";

type Kind = (CellMessage | NodeMessage)["kind"];

// Every kind must be classified here (the compiler insists), so a new message kind cannot
// slip through as something a client may send.
const classes = {
  prepare: "peer",
  promise: "peer",
  accept: "peer",
  accepted: "peer",
  nack: "peer",
  commit: "peer",
  learn: "peer",
  teach: "peer",
  request: "data",
  reply: "reply",
  // Asking who a node is and what it knows of a cell is a read: any client may.
  hello: "data",
  create: "control",
  join: "control",
} as const satisfies Record<Kind, MessageClass>;

export function classify(message: CellMessage | NodeMessage): MessageClass {
  if (message.kind === "request" && message.op.kind === "config") return "control";
  return classes[message.kind];
}

/** The classes each role may send to a node. */
const allowedAtNode: Record<Role, ReadonlySet<MessageClass>> = {
  node: new Set(["peer"]),
  client: new Set(["data"]),
  control: new Set(["data", "control"]),
};

export interface NodeFacts {
  /** The receiving node's color. */
  readonly color: string;
  /** The color of a topology node by its topology id, or undefined for an id that is no node. */
  readonly colorOf: (nodeId: string) => string | undefined;
}

export interface InboundFrame {
  readonly role: Role;
  readonly sender: string;
  readonly messages: readonly Envelope[];
  /** The kinds of the discovery messages the frame carries, if any. */
  readonly discovery?: readonly { readonly kind: DiscoveryKind }[];
}

type DiscoveryKind = "gossip" | "lookup" | "lookupAnswer" | "peersRequest" | "peersAnswer";

/** Which roles may send each discovery kind to a node. */
const discoveryAtNode: Record<DiscoveryKind, ReadonlySet<Role>> = {
  gossip: new Set(["node"]),
  lookup: new Set(["client", "control"]),
  lookupAnswer: new Set(),
  peersRequest: new Set(["control"]),
  peersAnswer: new Set(),
};

const refuse = (reason: RoleRejectReason, detail: string): RoleResult => ({ ok: false, reason, detail });
const allowed: RoleResult = { ok: true };

/** Whether the sender's id and role fit, before looking at what it carries. */
function checkSender(role: Role, sender: string, facts: NodeFacts): RoleResult {
  if (role === "node") {
    const color = facts.colorOf(nodePart(sender));
    if (color === undefined) return refuse("unknownNode", `${sender} is not a node of the topology`);
    if (color !== facts.color) return refuse("wrongColor", `${sender} is a ${color} node, this node is ${facts.color}`);
    return allowed;
  }
  if (hasIncarnation(sender) || !isPlainId(sender) || facts.colorOf(sender) !== undefined) {
    return refuse("wrongRole", `a ${role} key cannot speak as the node ${sender}`);
  }
  return allowed;
}

/** May a node accept this authenticated frame? Every message must be allowed for the frame to be. */
export function authorizeAtNode(frame: InboundFrame, facts: NodeFacts): RoleResult {
  const sender = checkSender(frame.role, frame.sender, facts);
  if (!sender.ok) return sender;
  const permitted = allowedAtNode[frame.role];
  for (const { message } of frame.messages) {
    const needs = classify(message);
    if (!permitted.has(needs)) return refuse("wrongRole", `a ${frame.role} key cannot send ${message.kind === "request" ? `a ${needs} request` : message.kind}`);
    if ((message.kind === "request" || message.kind === "create" || message.kind === "join" || message.kind === "hello") && message.client !== frame.sender) {
      return refuse("wrongSender", `${frame.sender} sent a ${message.kind} as client ${message.client}`);
    }
  }
  for (const { kind } of frame.discovery ?? []) {
    if (!discoveryAtNode[kind].has(frame.role)) return refuse("wrongRole", `a ${frame.role} key cannot send a discovery ${kind}`);
  }
  return allowed;
}

/** May a node accept a chunk of a larger frame? Only its color's nodes send those (teaching). */
export function authorizeChunkAtNode(frame: { readonly role: Role; readonly sender: string }, facts: NodeFacts): RoleResult {
  const sender = checkSender(frame.role, frame.sender, facts);
  if (!sender.ok) return sender;
  if (frame.role !== "node") return refuse("wrongRole", `a ${frame.role} key cannot send chunked frames to a node`);
  return allowed;
}

export interface ClientFacts {
  /** Whether a topology id names a node this client talks to. */
  readonly isNode: (nodeId: string) => boolean;
}

/** May a client accept this frame (or chunk, with no messages yet)? Replies from its nodes, under a client or control key. */
export function authorizeAtClient(frame: InboundFrame, facts: ClientFacts): RoleResult {
  if (frame.role === "node") return refuse("wrongRole", "a node key never signs frames for clients");
  if (!facts.isNode(nodePart(frame.sender))) return refuse("unknownNode", `${frame.sender} is not a node this client talks to`);
  for (const { message } of frame.messages) {
    if (message.kind !== "reply") return refuse("wrongRole", `a client accepts only replies, not ${message.kind}`);
  }
  for (const { kind } of frame.discovery ?? []) {
    if (kind === "peersAnswer" && frame.role !== "control") return refuse("wrongRole", "a peers answer comes only under the control key");
    if (kind !== "lookupAnswer" && kind !== "peersAnswer") return refuse("wrongRole", `a client accepts only lookup and peers answers, not discovery ${kind}`);
  }
  return allowed;
}
