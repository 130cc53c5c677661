// The names the discovery layer carries: node ids (from the topology), node identities
// (`nodeId~incarnation`, the incarnation being the data directory's 16 lowercase hex digits),
// cell names and cell incarnations, and node addresses. Each check answers true or false;
// callers turn a false into a typed rejection.

import { isWellFormed, utf8Bytes } from "../core/value.ts";
import { discoveryLimits } from "./limits.ts";

const nodeIdPattern = /^[A-Za-z0-9._-]{1,64}$/;
const incarnationPattern = /^[0-9a-f]{16}$/;
const identityPattern = /^([A-Za-z0-9._-]{1,64})~([0-9a-f]{16})$/;
const addressPattern = /^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253}):([1-9][0-9]{0,4})$/;

export function isNodeId(text: unknown): text is string {
  return typeof text === "string" && nodeIdPattern.test(text);
}

/** 16 lowercase hex digits: a node's or a cell's incarnation. */
export function isIncarnation(text: unknown): text is string {
  return typeof text === "string" && incarnationPattern.test(text);
}

/** `nodeId~incarnation`: one life of one node's data directory. */
export function isIdentity(text: unknown): text is string {
  return typeof text === "string" && identityPattern.test(text);
}

/** The node id of an identity; a bare node id is its own node id. */
export function nodeOf(identity: string): string {
  const tilde = identity.indexOf("~");
  return tilde < 0 ? identity : identity.slice(0, tilde);
}

export function isCellName(text: unknown): text is string {
  if (typeof text !== "string" || text.length === 0) return false;
  // A UTF-16 length above the byte bound cannot fit: skip counting very long strings.
  if (text.length > discoveryLimits.cellNameBytesMax) return false;
  return isWellFormed(text) && utf8Bytes(text) <= discoveryLimits.cellNameBytesMax;
}

/**
 * "host:port" or "[ipv6]:port" with a port from 1 to 65535. This is a syntax check only; the
 * node parses the address fully (src/control/topology/address.ts) before it sends to it.
 */
export function isAddress(text: unknown): text is string {
  if (typeof text !== "string" || text.length > discoveryLimits.addressBytesMax) return false;
  const match = addressPattern.exec(text);
  return match !== null && Number(match[2]) <= 65_535;
}

/** Incarnations compare as 64-bit unsigned integers; fixed-width hex compares the same way. */
export function compareIncarnations(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
