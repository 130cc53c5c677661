// Every message kind under every role, from every kind of sender: the role check's whole
// table, written out here independently of the one in src/wire/roles.ts.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import type { CellMessage, Envelope, NodeMessage } from "../../src/core/messages.ts";
import type { Role } from "../../src/wire/keyring.ts";
import { type NodeFacts, type RoleResult, authorizeAtClient, authorizeAtNode, authorizeChunkAtNode, classify } from "../../src/wire/roles.ts";
import { envelopes } from "../support/messages.ts";

const ballot = { round: 1_000_000, node: "n2" };
const noop = { kind: "noop" as const };
const put = { kind: "tx" as const, tx: { reads: [], conditions: [], writes: [{ key: "k", op: "put" as const, value: new Uint8Array([1]) }] } };

/** One message of every kind; requests and `create` name `client` as their client. */
function everyKind(client: string): Record<string, CellMessage | NodeMessage> {
  return {
    prepare: { kind: "prepare", ballot, from: 1 },
    promise: { kind: "promise", ballot, from: 1, accepted: [], compactedThrough: 0 },
    accept: { kind: "accept", ballot, slot: 1, value: noop, chosenThrough: 0 },
    accepted: { kind: "accepted", ballot, slot: 1 },
    nack: { kind: "nack", ballot, promised: ballot },
    commit: { kind: "commit", ballot, through: 1 },
    learn: { kind: "learn", from: 1 },
    teach: { kind: "teach", entries: [], chosenThrough: 0, snapshot: { slot: 1, state: new Uint8Array(4) } },
    dataRequest: { kind: "request", client, id: 1, session: 64, seq: 1, acked: 1, op: put, consistency: "consistent", minApplied: 0, force: false },
    eventualRead: { kind: "request", client, id: 1, session: 64, seq: 1, acked: 1, op: { kind: "tx", tx: { reads: ["k"], conditions: [], writes: [] } }, consistency: "eventual", minApplied: 0, force: false },
    addMember: { kind: "request", client, id: 1, session: 64, seq: 1, acked: 1, op: { kind: "config", change: { kind: "addMember", node: "n9" } }, consistency: "consistent", minApplied: 0, force: false },
    removeMember: { kind: "request", client, id: 1, session: 64, seq: 1, acked: 1, op: { kind: "config", change: { kind: "removeMember", node: "n2" } }, consistency: "consistent", minApplied: 0, force: false },
    create: { kind: "create", client, id: 1, genesis: { members: ["n1", "n2", "n3"], incarnation: "0123456789abcdef", alpha: 3, sessionTtlMs: 60_000, sessionsMax: 128 } },
    join: { kind: "join", client, id: 1, incarnation: "0123456789abcdef" },
    reply: { kind: "reply", client, id: 1, outcome: { kind: "overloaded" } },
  };
}

const peerKinds = ["prepare", "promise", "accept", "accepted", "nack", "commit", "learn", "teach"];

/** What each role may send to a node, by the spec: peers only under the node key, data under client, data and control under control. */
const mayAtNode: Record<Role, readonly string[]> = {
  node: peerKinds,
  client: ["dataRequest", "eventualRead"],
  control: ["dataRequest", "eventualRead", "addMember", "removeMember", "create", "join"],
};

// The topology: blue nodes n1..n3 (the receiver is blue), red nodes r1, r2.
const colors = new Map([["n1", "blue"], ["n2", "blue"], ["n3", "blue"], ["r1", "red"], ["r2", "red"]]);
const facts: NodeFacts = { color: "blue", colorOf: (id) => colors.get(id) };
const inc = "~0123456789abcdef";

type SenderKind = "blueNode" | "blueNodeIncarnation" | "redNode" | "redNodeIncarnation" | "client" | "strangerIncarnation";
const senders: Record<SenderKind, string> = {
  blueNode: "n2",
  blueNodeIncarnation: `n2${inc}`,
  redNode: "r1",
  redNodeIncarnation: `r1${inc}`,
  client: "ctl-42",
  strangerIncarnation: `x9${inc}`,
};

/** The verdict the spec gives for one message from one sender under one role. */
function expected(role: Role, sender: SenderKind, kind: string): RoleResult["ok"] | string {
  if (role === "node") {
    if (sender === "redNode" || sender === "redNodeIncarnation") return "wrongColor";
    if (sender === "client" || sender === "strangerIncarnation") return "unknownNode";
    return mayAtNode.node.includes(kind) ? true : "wrongRole";
  }
  if (sender !== "client") return "wrongRole"; // A client or control key claiming a node's id, or an incarnation.
  return mayAtNode[role].includes(kind) ? true : "wrongRole";
}

const verdict = (result: RoleResult) => (result.ok ? true : result.reason);
const roles: Role[] = ["node", "client", "control"];

describe("the role check at a node", () => {
  test("every message kind under every role from every kind of sender", () => {
    let cases = 0;
    for (const role of roles) {
      for (const [senderKind, sender] of Object.entries(senders) as [SenderKind, string][]) {
        for (const [kind, message] of Object.entries(everyKind(sender))) {
          const result = authorizeAtNode({ role, sender, messages: [{ cell: "vol", message }] }, facts);
          expect({ role, senderKind, kind, verdict: verdict(result) }).toEqual({ role, senderKind, kind, verdict: expected(role, senderKind, kind) as never });
          cases++;
        }
        // An empty frame (a heartbeat) carries nothing, so only the sender is checked.
        const empty = authorizeAtNode({ role, sender, messages: [] }, facts);
        expect(verdict(empty)).toBe(expected(role, senderKind, role === "node" ? "prepare" : "dataRequest") as never);
      }
    }
    expect(cases).toBe(3 * 6 * 15);
  });

  test("one forbidden message makes the whole frame forbidden", () => {
    const kinds = everyKind("ctl-42");
    const mixed: Envelope[] = [{ cell: "a", message: kinds.dataRequest as CellMessage }, { cell: "b", message: kinds.accept as CellMessage }];
    expect(verdict(authorizeAtNode({ role: "client", sender: "ctl-42", messages: mixed }, facts))).toBe("wrongRole");
    expect(verdict(authorizeAtNode({ role: "control", sender: "ctl-42", messages: mixed }, facts))).toBe("wrongRole");
    expect(verdict(authorizeAtNode({ role: "client", sender: "ctl-42", messages: [mixed[0] as Envelope, mixed[0] as Envelope] }, facts))).toBe(true);
  });

  test("a request or create must name its frame's sender as the client", () => {
    for (const kind of ["dataRequest", "addMember", "create", "join"]) {
      const message = everyKind("someone-else")[kind] as CellMessage;
      const result = authorizeAtNode({ role: "control", sender: "ctl-42", messages: [{ cell: "vol", message }] }, facts);
      expect(verdict(result)).toBe("wrongSender");
    }
  });

  test("chunks come only from nodes of the receiver's color", () => {
    for (const role of roles) {
      for (const [senderKind, sender] of Object.entries(senders) as [SenderKind, string][]) {
        const result = verdict(authorizeChunkAtNode({ role, sender }, facts));
        const want = role === "node" ? expected("node", senderKind, "teach") : "wrongRole";
        expect({ role, senderKind, result }).toEqual({ role, senderKind, result: want as never });
      }
    }
  });

  test("any generated message is allowed under the node key exactly when it is a peer message", () => {
    fc.assert(
      fc.property(envelopes, (messages) => {
        const peers = messages.every(({ message }) => peerKinds.includes(message.kind));
        expect(authorizeAtNode({ role: "node", sender: "n3", messages }, facts).ok).toBe(peers);
        expect(messages.every(({ message }) => ["peer", "data", "control", "reply"].includes(classify(message)))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe("the role check at a client", () => {
  const isNode = (id: string) => ["n1", "n2", "n3"].includes(id);
  test("replies from its nodes under the client or control key, nothing else", () => {
    for (const role of roles) {
      for (const [senderKind, sender] of Object.entries(senders) as [SenderKind, string][]) {
        for (const [kind, message] of Object.entries(everyKind("me"))) {
          const result = verdict(authorizeAtClient({ role, sender, messages: [{ cell: "vol", message }] }, { isNode }));
          const fromNode = senderKind === "blueNode" || senderKind === "blueNodeIncarnation";
          const want = role === "node" ? "wrongRole" : !fromNode ? "unknownNode" : kind === "reply" ? true : "wrongRole";
          expect({ role, senderKind, kind, result }).toEqual({ role, senderKind, kind, result: want as never });
        }
      }
    }
  });
});
