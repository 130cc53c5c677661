// A UDP proxy between one client and the nodes, in the test process. The client is given
// the proxy's endpoints as the nodes' addresses; for each node the proxy has one socket,
// which forwards the client's datagrams to that node and the node's answers (a node replies
// to where it last heard the client from: this socket) back to the client. On the way it
// can drop requests to chosen nodes, drop every reply (lost replies), and it records every
// datagram so that it can send any of them again later, byte for byte.

import type { ClientReply, ClientRequest } from "../../src/core/messages.ts";
import { limits } from "../../src/limits.ts";
import type { Endpoint, Transport } from "../../src/transport/transport.ts";
import { openUdp } from "../../src/transport/udp.ts";
import { decodeFrame } from "../../src/wire/frame.ts";
import type { KeySet } from "../../src/wire/keyring.ts";
import { decodeBody } from "../../src/wire/schema.ts";

export interface Datagram {
  /** "request": from the client to `node`; "reply": from `node` to the client. */
  readonly direction: "request" | "reply";
  readonly node: string;
  readonly bytes: Uint8Array;
  /** performance.now() when the proxy saw it. */
  readonly at: number;
  /** Its place in the proxy's record, counting from 0 and never reused. */
  readonly index: number;
}

export interface ProxyCounts {
  forwarded: number;
  droppedRequests: number;
  droppedReplies: number;
  resent: number;
}

export class ClientProxy {
  /** What the client must use as the nodes' addresses. */
  readonly endpoints = new Map<string, Endpoint>();
  /** Nodes to which the client's datagrams are dropped. */
  readonly dropRequestsTo = new Set<string>();
  /** Whether every datagram from a node to the client is dropped. */
  dropReplies = false;
  /** Drops the client's datagrams this says yes to (say, one command's copies), wherever they go. */
  dropRequestIf: ((datagram: Datagram) => boolean) | null = null;
  readonly counts: ProxyCounts = { forwarded: 0, droppedRequests: 0, droppedReplies: 0, resent: 0 };
  private readonly record: Datagram[] = [];
  private recordedTotal = 0;
  private readonly sockets = new Map<string, Transport>();
  private client: Endpoint | null = null;
  private closed = false;

  private constructor(private readonly nodes: ReadonlyMap<string, Endpoint>, private readonly recordMax: number) {}

  /** A proxy for every node of `nodes`; it keeps the last `recordMax` datagrams. */
  static async open(nodes: ReadonlyMap<string, Endpoint>, options: { readonly recordMax?: number } = {}): Promise<ClientProxy> {
    const proxy = new ClientProxy(nodes, options.recordMax ?? 4096);
    for (const [node, target] of nodes) {
      const socket = await openUdp({ host: "127.0.0.1", port: 0 });
      socket.onReceive((bytes, from) => proxy.receive(node, target, bytes, from));
      proxy.sockets.set(node, socket);
      proxy.endpoints.set(node, socket.local);
    }
    return proxy;
  }

  /** Datagrams recorded so far (the last `recordMax`), oldest first. */
  recorded(filter: (d: Datagram) => boolean = () => true): Datagram[] {
    return this.record.filter(filter);
  }

  /** The index the next recorded datagram will have. */
  get mark(): number {
    return this.recordedTotal;
  }

  /** Sends a recorded datagram again, byte for byte, the way it went: to its node, or to the client. */
  resend(datagram: Datagram): void {
    if (this.closed) return;
    const socket = this.sockets.get(datagram.node);
    const to = datagram.direction === "request" ? this.nodes.get(datagram.node) : this.client;
    if (socket === undefined || to === undefined || to === null) return;
    this.counts.resent++;
    socket.send(datagram.bytes, to);
  }

  private receive(node: string, target: Endpoint, bytes: Uint8Array, from: Endpoint): void {
    if (this.closed) return;
    const direction = from.port === target.port && from.host === target.host ? "reply" : "request";
    if (direction === "request") this.client = from;
    // The runtime may hand out a view of a buffer it reuses: keep a copy.
    const copy = new Uint8Array(bytes);
    this.record.push({ direction, node, bytes: copy, at: performance.now(), index: this.recordedTotal++ });
    if (this.record.length > this.recordMax) this.record.shift();
    const socket = this.sockets.get(node) as Transport;
    if (direction === "request") {
      if (this.dropRequestsTo.has(node) || this.dropRequestIf?.(this.record[this.record.length - 1] as Datagram) === true) {
        this.counts.droppedRequests++;
        return;
      }
      this.counts.forwarded++;
      socket.send(copy, target);
    } else {
      if (this.dropReplies || this.client === null) {
        this.counts.droppedReplies++;
        return;
      }
      this.counts.forwarded++;
      socket.send(copy, this.client);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const socket of this.sockets.values()) socket.close();
  }
}

/** What a recorded datagram carries, read with the keys of the client that sent or received it. */
export interface Carried {
  readonly requests: readonly ClientRequest[];
  readonly replies: readonly ClientReply[];
}

export function carried(datagram: Datagram, keys: KeySet): Carried {
  const framed = decodeFrame(datagram.bytes, keys, { bytesMax: limits.messageBytesMax });
  if (!framed.ok || framed.frame.kind !== "frame") return { requests: [], replies: [] };
  const body = decodeBody(framed.frame.body);
  if (!body.ok) return { requests: [], replies: [] };
  const requests: ClientRequest[] = [];
  const replies: ClientReply[] = [];
  for (const { message } of body.messages) {
    if (message.kind === "request") requests.push(message);
    else if (message.kind === "reply") replies.push(message);
  }
  return { requests, replies };
}
