// The transports a node or a client opens for a colony: each remote over the transport its
// topology entry names (`"transport"`, default "udp"; see src/transport/mixed.ts).

import type { Topology, TopologyNode } from "../control/topology/types.ts";
import { openLinks, type Remote } from "../transport/mixed.ts";
import type { Endpoint, Transport } from "../transport/transport.ts";
import type { KeyRing } from "../wire/keyring.ts";
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
export function openNodeLinks(topology: Topology, me: TopologyNode, keyring: KeyRing): Promise<Transport> {
  return open({ self: remoteOf(me), remotes: colorRemotes(topology, me.color, me.id), keyring });
}

/** A client's transport, to one color's nodes. */
export function openClientLinks(topology: Topology, color: string, keyring: KeyRing, clientUdp?: Endpoint): Promise<Transport> {
  return open({ self: null, remotes: colorRemotes(topology, color), keyring, ...(clientUdp === undefined ? {} : { clientUdp }) });
}
