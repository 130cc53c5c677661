// The ids that appear in frame headers and messages. A client's id is a plain id; a node's
// is its topology id, optionally followed by its incarnation (`n3~0123456789abcdef`), which
// tells a node that restarted empty from the one that held its votes. Only the part before
// the tilde is compared with the topology.

import { limits } from "../limits.ts";

const plainPattern = /^[A-Za-z0-9._-]+$/;
const incarnationPattern = new RegExp(`^[0-9a-f]{${limits.incarnationHexDigits}}$`);

/** 1 to 64 of [A-Za-z0-9._-]: a topology name or a client id. */
export function isPlainId(id: string): boolean {
  return id.length > 0 && id.length <= limits.plainIdBytesMax && plainPattern.test(id);
}

/** A plain id, or a plain id, a tilde and 16 lowercase hex digits. */
export function isNodeId(id: string): boolean {
  const tilde = id.indexOf("~");
  if (tilde < 0) return isPlainId(id);
  return isPlainId(id.slice(0, tilde)) && incarnationPattern.test(id.slice(tilde + 1));
}

/** Whether the id carries an incarnation, which only a node's id does. */
export function hasIncarnation(id: string): boolean {
  return id.includes("~");
}

/** The topology id of a node id: everything before the tilde. */
export function nodePart(id: string): string {
  const tilde = id.indexOf("~");
  return tilde < 0 ? id : id.slice(0, tilde);
}

/**
 * Whether a frame addressed to `receiver` is for the node or client `self`: the same id, or
 * the plain id of a node that has an incarnation (a client addresses nodes by topology id).
 */
export function isAddressedTo(receiver: string, self: string): boolean {
  return receiver === self || (!hasIncarnation(receiver) && hasIncarnation(self) && receiver === nodePart(self));
}
