// What node, ctl and dev share: reading the topology and key files with clear errors, and
// the endpoints of one color's nodes.

import { readFile } from "node:fs/promises";
import { parseAddress } from "../control/topology/address.ts";
import { loadTopology } from "../control/topology/load.ts";
import type { Topology } from "../control/topology/types.ts";
import { isTopologyError } from "../control/topology/types.ts";
import type { Endpoint } from "../transport/transport.ts";
import { type KeyFileKind, parseKeyFile } from "../wire/keyfile.ts";
import { KeyFileError, type KeySet } from "../wire/keyring.ts";
import { UsageError } from "./args.ts";

/** An expected failure the CLI reports in one line with exit status 1: the colony could not or would not. */
export class CliError extends Error {
  override name = "CliError";
}

/**
 * Bad input that is not a usage error: a file that cannot be read or parsed, a value
 * outside the data model, the wrong kind of key file. Reported in one line, exit status 2.
 */
export class InputError extends CliError {
  override name = "InputError";
}

export async function readTopology(path: string | undefined): Promise<Topology> {
  if (path === undefined) throw new UsageError("--topology FILE is required");
  const topology = await loadTopology(path);
  if (isTopologyError(topology)) throw new InputError(topology.message);
  return topology;
}

/** Reads a key file, which must be of one of the kinds the command takes. */
export async function readKeys(path: string | undefined, kinds: readonly KeyFileKind[]): Promise<{ kind: KeyFileKind; keys: KeySet }> {
  if (path === undefined) throw new UsageError("--keys FILE is required");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new InputError(`Cannot read key file ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const parsed = parseKeyFile(text);
  if (parsed instanceof KeyFileError) throw new InputError(`${parsed.message} (in ${path})`);
  if (!kinds.includes(parsed.kind)) {
    throw new InputError(`Cannot use key file ${path}: it is a ${parsed.kind} key file, and this command takes a ${kinds.join(" or a ")} key file`);
  }
  return parsed;
}

export function endpointOf(address: string): Endpoint {
  const parsed = parseAddress(address);
  if (typeof parsed === "string") throw new InputError(`Cannot use address ${address}: ${parsed}`);
  return { host: parsed.host, port: parsed.port };
}

/** The nodes of one color, by id: the only nodes a node or client of that color talks to. */
export function colorEndpoints(topology: Topology, color: string): Map<string, Endpoint> {
  if (!topology.colors.includes(color)) throw new InputError(`Cannot use color ${JSON.stringify(color.slice(0, 64))}: the topology has ${topology.colors.join(", ")}`);
  const out = new Map<string, Endpoint>();
  for (const node of topology.nodes) if (node.color === color) out.set(node.id, endpointOf(node.address));
  return out;
}

/** Every node of the topology with its color, so a node can tell another color's node from a stranger. */
export function nodeColors(topology: Topology): Map<string, string> {
  return new Map(topology.nodes.map((node) => [node.id, node.color]));
}
