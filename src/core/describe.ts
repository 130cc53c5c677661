// One line per message, for traces of the simworld and of real nodes. Pure formatting.

import { toHex } from "./bytes.ts";
import type { CellMessage, LogValue, NodeMessage } from "./messages.ts";

export function printLogValue(value: LogValue): string {
  return JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? toHex(v) : v));
}

export function describeMessage(message: CellMessage | NodeMessage): string {
  const b = "ballot" in message ? ` b=${message.ballot.round}.${message.ballot.node}` : "";
  switch (message.kind) {
    case "prepare":
      return `prepare${b} from=${message.from}`;
    case "promise":
      return `promise${b} from=${message.from} compacted=${message.compactedThrough} accepted=[${message.accepted.map((e) => `${e.slot}@${e.ballot.round}.${e.ballot.node}:${printLogValue(e.value).slice(0, 60)}`).join(" ")}]`;
    case "accept":
      return `accept${b} slot=${message.slot} chosenThrough=${message.chosenThrough} ${printLogValue(message.value).slice(0, 80)}`;
    case "accepted":
      return `accepted${b} slot=${message.slot}`;
    case "nack":
      return `nack${b} promised=${message.promised.round}.${message.promised.node}`;
    case "commit":
      return `commit${b} through=${message.through}`;
    case "learn":
      return `learn from=${message.from}`;
    case "teach":
      return `teach through=${message.chosenThrough} entries=${message.entries.map((e) => e.slot).join(",")}${message.snapshot ? ` snapshot@${message.snapshot.slot}` : ""}`;
    case "request":
      return `request ${message.client}#${message.id} ${message.op.kind} s=${message.session}.${message.seq} ${message.consistency}${message.force ? " force" : ""}`;
    case "reply":
      return `reply ${message.client}#${message.id} ${message.outcome.kind}${message.outcome.kind === "redirect" ? ` ${message.outcome.leader}` : message.outcome.kind === "done" ? ` ${message.outcome.result.status}` : ""}`;
    case "create":
      return `create ${message.client}#${message.id} ${message.genesis.incarnation} ${message.genesis.members.join(",")}`;
    case "join":
      return `join ${message.client}#${message.id} ${message.incarnation}`;
    case "hello":
      return `hello ${message.client}#${message.id}`;
  }
}

