// What node, ctl and dev share: reading the topology and key files with clear errors, and
// the endpoints of one color's nodes.

import { readFile } from "node:fs/promises";
import { parseAddress } from "../control/topology/address.ts";
import { loadTopology } from "../control/topology/load.ts";
import type { Topology } from "../control/topology/types.ts";
import { isTopologyError } from "../control/topology/types.ts";
import type { Endpoint } from "../transport/transport.ts";
import { type KeyRing, KeyFileError, parseKeyFile } from "../wire/keyring.ts";
import { UsageError } from "./args.ts";

/** An expected failure the CLI reports in one line with exit status 1. */
export class CliError extends Error {
  override name = "CliError";
}

export async function readTopology(path: string | undefined): Promise<Topology> {
  if (path === undefined) throw new UsageError("--topology FILE is required");
  const topology = await loadTopology(path);
  if (isTopologyError(topology)) throw new CliError(topology.message);
  return topology;
}

export async function readKeys(path: string | undefined): Promise<KeyRing> {
  if (path === undefined) throw new UsageError("--keys FILE is required");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new CliError(`Cannot read key file ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const ring = parseKeyFile(text);
  if (ring instanceof KeyFileError) throw new CliError(`${ring.message} (in ${path})`);
  return ring;
}

export function endpointOf(address: string): Endpoint {
  const parsed = parseAddress(address);
  if (typeof parsed === "string") throw new CliError(`Cannot use address ${address}: ${parsed}`);
  return { host: parsed.host, port: parsed.port };
}

/** The nodes of one color, by id: the only nodes a node or client of that color talks to. */
export function colorEndpoints(topology: Topology, color: string): Map<string, Endpoint> {
  if (!topology.colors.includes(color)) throw new CliError(`Cannot use color ${color}: the topology has ${topology.colors.join(", ")}`);
  const out = new Map<string, Endpoint>();
  for (const node of topology.nodes) if (node.color === color) out.set(node.id, endpointOf(node.address));
  return out;
}

/** A fresh key file: one random 32-byte key. */
export function newKeyFile(): string {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const hex = [...secret].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${JSON.stringify({ version: 1, current: 1, keys: [{ id: 1, secret: hex }] })}\n`;
}
