// The topology file that datacenter automation hands the control plane: where every node
// is (row, rack, power domain), which color it belongs to, how many cell replicas it may
// host, and where the clients (instances and storage servers) are. See docs/placement.md.

export type ClientKind = "instance" | "storage";

/** How the node's peers and clients reach it: raw UDP datagrams, or WebRTC data channels (DTLS). */
export type NodeTransport = "udp" | "datachannel";

export interface TopologyNode {
  /** 1 to 64 bytes of [A-Za-z0-9._-]; unique in the file. */
  readonly id: string;
  /** "host:port" or "[ipv6]:port", where host is an IPv4 literal or a hostname; unique. */
  readonly address: string;
  readonly row: string;
  /** Rack names are global: one rack belongs to exactly one row. */
  readonly rack: string;
  /** One of the file's `powerDomains`. */
  readonly power: string;
  /** One of the file's `colors`. Nodes of different colors never talk to each other. */
  readonly color: string;
  /** How many cell replicas this node may host. */
  readonly capacity: number;
  /**
   * Present only when the file names it; missing means "udp". A link uses data channels when
   * either of its ends is a "datachannel" node.
   */
  readonly transport?: NodeTransport;
}

export interface TopologyClient {
  readonly id: string;
  readonly kind: ClientKind;
  /** A row that has nodes. */
  readonly row: string;
  /** May be a rack without nodes, but never a rack of another row. */
  readonly rack: string;
  /** The client's power domain, when automation knows it. */
  readonly power?: string;
}

export interface Topology {
  readonly version: 1;
  readonly name?: string;
  readonly powerDomains: readonly string[];
  readonly colors: readonly string[];
  readonly nodes: readonly TopologyNode[];
  readonly clients: readonly TopologyClient[];
}

/** An expected failure: a topology that cannot be read, parsed or generated. Returned, not thrown. */
export class TopologyError extends Error {
  override name = "TopologyError";
}

export function isTopologyError(value: unknown): value is TopologyError {
  return value instanceof TopologyError;
}
