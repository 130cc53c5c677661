// The transports a node or a client opens for a colony: each remote over the transport its
// topology entry names (`"transport"`, default "udp"; see src/transport/mixed.ts).

import type { Topology, TopologyNode } from "../control/topology/types.ts";
import { openLinks, type Remote } from "../transport/mixed.ts";
import { signalKeysOf } from "../transport/signal.ts";
import type { Endpoint, Transport } from "../transport/transport.ts";
import type { KeySet } from "../wire/keyring.ts";
import { CliError, endpointOf } from "./colony.ts";

function remoteOf(node: TopologyNode): Remote {
  return { address: endpointOf(node.address), transport: node.transport ?? "udp" };
}

/** The nodes of one color, except `exceptId`, as remotes. */
export function colorRemotes(topology: Topology, color: string, exceptId?: string): Remote[] {
  return topology.nodes.filter((n) => n.color === color && n.id !== exceptId).map(remoteOf);
}

async function open(options: Parameters<typeof openLinks>[0]): Promise<Transport> {
  try {
    return await openLinks(options);
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message : String(error));
  }
}

/** A node's transport: its own address, to its color's other nodes. */
export function openNodeLinks(topology: Topology, me: TopologyNode, keys: KeySet): Promise<Transport> {
  return open({ self: remoteOf(me), remotes: colorRemotes(topology, me.color, me.id), keyring: signalKeysOf(keys, "node") });
}

/**
 * Where a client binds its UDP socket: on loopback when every node it talks to is there
 * (nothing else can then reach the socket), else on every interface, since a remote node's
 * replies must come in somewhere.
 */
export function clientBindAddress(topology: Topology, color: string): Endpoint {
  const hosts = new Set(colorRemotes(topology, color).map((r) => r.address.host));
  if ([...hosts].every((h) => h.startsWith("127."))) return { host: "127.0.0.1", port: 0 };
  if ([...hosts].every((h) => h === "::1")) return { host: "::1", port: 0 };
  return { host: "0.0.0.0", port: 0 };
}

/** A client's transport, to one color's nodes. */
export function openClientLinks(topology: Topology, color: string, keys: KeySet, clientUdp: Endpoint = clientBindAddress(topology, color)): Promise<Transport> {
  // A node's own client (its self-replacement) signs with the control ring, like ctl with a control file.
  const role = keys.ring("control") !== undefined && (keys.ring("client") === undefined || keys.ring("node") !== undefined) ? "control" : "client";
  return open({ self: null, remotes: colorRemotes(topology, color), keyring: signalKeysOf(keys, role), clientUdp });
}
