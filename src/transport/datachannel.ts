// The datagram transport over WebRTC data channels (libdatachannel, via node-datachannel):
// one peer connection per remote, each with one unordered, unreliable channel
// (maxRetransmits 0), so a frame is still a datagram that may be lost or reordered, as the
// protocol expects; DTLS adds confidentiality on top of the frames' HMAC. It is for peers
// that cannot exchange raw UDP.
//
// Identities. A node's identity is its topology address: offers to it go to
// http://ADDRESS/signal (TCP on the same port number as the address), and datagrams from
// it are reported as coming from that address. A client answers no offers; it has a random
// label, and nodes reply to it on the connection it opened.
//
// Connections open on the first send and queue a few datagrams meanwhile. When both ends
// offer at once, the offer from the smaller identity wins. A new offer from a remote
// replaces the connection to it (the remote restarted), and connections that fail, close,
// or go idle are dropped and reopened on the next send.

import { errorText } from "../runtime/mod.ts";
import type { SignalKeys } from "./signal.ts";
import { type DatachannelAddon, type NativeDataChannel, type NativePeerConnection, loadDatachannelAddon } from "./addon.ts";
import { type RouteHandler, type StatusServer, serveRoutes } from "./http.ts";
import { NonceCache, checkSignal, newNonce, signSignal, signalBytesMax } from "./signal.ts";
import type { Endpoint, ReceiveHandler, Transport } from "./transport.ts";
import { TransportError } from "./udp.ts";

export interface DatachannelOptions {
  /**
   * This side's identity. A node gives its topology address and `answer: true`, and serves
   * /signal there; a client gives nothing and gets a random label.
   */
  readonly local?: Endpoint;
  readonly answer?: boolean;
  readonly keyring: SignalKeys;
  /**
   * The address ICE binds to; null binds every interface. Default: the identity's host when
   * it is an IP literal, 127.0.0.1 for a client, and every interface otherwise.
   */
  readonly bindHost?: string | null;
  /** Datagrams queued per remote while its connection opens. */
  readonly queueMax?: number;
  /** A connection with nothing received for this long is closed. */
  readonly idleMs?: number;
  readonly connectTimeoutMs?: number;
  /** How long to wait before offering again to a remote whose offer failed. */
  readonly retryMs?: number;
  readonly linksMax?: number;
}

export interface DatachannelStats {
  readonly links: number;
  readonly open: number;
  readonly offersSent: number;
  readonly offersAnswered: number;
  readonly offersRefused: number;
}

export interface DatachannelTransport extends Transport {
  /** Whether sends to `to` should go over data channels: it is a data-channel peer, or reached us on one. */
  owns(to: Endpoint): boolean;
  /** Declares remotes to be reached over data channels (a node's data-channel peers). */
  addPeers(peers: Iterable<Endpoint>): void;
  stats(): DatachannelStats;
  /** The /signal endpoint, when this side answers offers. */
  readonly signalling: StatusServer | null;
}

interface Link {
  readonly pc: NativePeerConnection;
  channel: NativeDataChannel | null;
  open: boolean;
  readonly outgoing: boolean;
  readonly queue: Uint8Array[];
  lastHeardMs: number;
  /** Drops the link if it has not opened in time; cleared once it opens or is dropped, so that it never keeps a finished process (a ctl) alive. */
  connectTimer: ReturnType<typeof setTimeout> | null;
}

const channelLabel = "physalia";

export function keyOf(endpoint: Endpoint): string {
  return endpoint.host.includes(":") ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

function endpointOfKey(key: string): Endpoint {
  const colon = key.lastIndexOf(":");
  const host = key.slice(0, colon);
  return { host: host.startsWith("[") ? host.slice(1, -1) : host, port: Number(key.slice(colon + 1)) };
}

export async function openDatachannel(options: DatachannelOptions): Promise<DatachannelTransport> {
  let addon: DatachannelAddon;
  try {
    addon = await loadDatachannelAddon();
  } catch (error) {
    throw new TransportError(errorText(error));
  }
  const transport = new Datachannels(addon, options);
  if (options.answer === true) {
    if (options.local === undefined) throw new TransportError("Cannot answer data-channel offers without an address");
    transport.signalling = await serveRoutes(options.local, { "/signal": transport.signalRoute() }).catch((error: unknown) => {
      throw new TransportError(`Cannot serve data-channel signalling: ${errorText(error)}`);
    });
  }
  return transport;
}

class Datachannels implements DatachannelTransport {
  readonly local: Endpoint;
  signalling: StatusServer | null = null;
  private readonly identity: string;
  private readonly links = new Map<string, Link>();
  private readonly peers = new Set<string>();
  private readonly retryAt = new Map<string, number>();
  private readonly nonces = new NonceCache();
  private handler: ReceiveHandler = () => {};
  private closed = false;
  private readonly sweeper: ReturnType<typeof setInterval>;
  private offersSent = 0;
  private offersAnswered = 0;
  private offersRefused = 0;
  private readonly queueMax: number;
  private readonly idleMs: number;
  private readonly connectTimeoutMs: number;
  private readonly retryMs: number;
  private readonly linksMax: number;
  private readonly config: { iceServers: string[]; bindAddress?: string };

  constructor(private readonly addon: DatachannelAddon, private readonly options: DatachannelOptions) {
    this.local = options.local ?? { host: `client-${newNonce().slice(0, 12)}`, port: 0 };
    this.identity = keyOf(this.local);
    this.queueMax = options.queueMax ?? 64;
    this.idleMs = options.idleMs ?? 60_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    this.retryMs = options.retryMs ?? 500;
    this.linksMax = options.linksMax ?? 4_096;
    const bindHost = options.bindHost !== undefined ? options.bindHost : options.local === undefined ? "127.0.0.1" : isIpLiteral(options.local.host) ? options.local.host : null;
    // No STUN or TURN server: host candidates only, enough on one network.
    this.config = bindHost === null ? { iceServers: [] } : { iceServers: [], bindAddress: bindHost };
    this.sweeper = setInterval(() => this.sweep(), Math.max(1_000, Math.floor(this.idleMs / 4)));
  }

  owns(to: Endpoint): boolean {
    const key = keyOf(to);
    return this.peers.has(key) || this.links.has(key);
  }

  addPeers(peers: Iterable<Endpoint>): void {
    for (const peer of peers) this.peers.add(keyOf(peer));
  }

  onReceive(handler: ReceiveHandler): void {
    this.handler = handler;
  }

  stats(): DatachannelStats {
    let open = 0;
    for (const link of this.links.values()) if (link.open) open++;
    return { links: this.links.size, open, offersSent: this.offersSent, offersAnswered: this.offersAnswered, offersRefused: this.offersRefused };
  }

  send(bytes: Uint8Array, to: Endpoint): void {
    if (this.closed) return;
    const key = keyOf(to);
    const link = this.links.get(key);
    if (link?.open === true && link.channel !== null) {
      try {
        link.channel.sendMessageBinary(bytes);
      } catch {
        // Best effort, like the network: a channel that just closed loses the datagram.
      }
      return;
    }
    if (link !== undefined) {
      enqueue(link.queue, bytes, this.queueMax);
      return;
    }
    // Only a remote that answers offers (a node, known by its address) can be called; a
    // client that went away cannot, and its datagrams are lost.
    if (!this.peers.has(key) || (this.retryAt.get(key) ?? 0) > Date.now() || this.links.size >= this.linksMax) return;
    this.offer(key, bytes);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    this.signalling?.stop();
    for (const key of [...this.links.keys()]) this.drop(key);
  }

  // ---- offering --------------------------------------------------------------------------

  private offer(key: string, first: Uint8Array): void {
    const pc = new this.addon.PeerConnection(`${this.identity}>${key}`, this.config);
    const link: Link = { pc, channel: null, open: false, outgoing: true, queue: [first.slice()], lastHeardMs: Date.now(), connectTimer: null };
    this.links.set(key, link);
    this.watch(key, link);
    this.attach(key, link, pc.createDataChannel(channelLabel, { unordered: true, maxRetransmits: 0 }));
    this.offersSent++;
    void this.exchange(key, link).catch(() => {
      // The remote is down, refused, or answered badly: forget it for a while.
      if (this.links.get(key) === link) {
        this.drop(key);
        this.retryAt.set(key, Date.now() + this.retryMs);
      }
    });
  }

  private async exchange(key: string, link: Link): Promise<void> {
    const sdp = await gathered(link.pc, this.connectTimeoutMs);
    const signal = signSignal(this.options.keyring, { kind: "offer", from: this.identity, to: key, nonce: newNonce(), at: Date.now(), sdp });
    const response = await fetch(`http://${key}/signal`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(signal),
      signal: AbortSignal.timeout(this.connectTimeoutMs),
    });
    const text = await response.text();
    if (!response.ok) throw new TransportError(`offer to ${key} refused: ${response.status} ${text.trim()}`);
    const checked = checkSignal(this.options.keyring, text, { kind: "answer", to: this.identity, nowMs: Date.now() });
    if (!checked.ok) throw new TransportError(`bad answer from ${key}: ${checked.reason}`);
    if (checked.signal.nonce !== signal.nonce || checked.signal.from !== key) throw new TransportError(`the answer from ${key} is for another offer`);
    if (this.links.get(key) !== link) return; // Replaced meanwhile.
    link.pc.setRemoteDescription(checked.signal.sdp, "answer");
    if (link.open) return;
    link.connectTimer = setTimeout(() => {
      link.connectTimer = null;
      if (this.links.get(key) === link && !link.open) {
        this.drop(key);
        this.retryAt.set(key, Date.now() + this.retryMs);
      }
    }, this.connectTimeoutMs);
  }

  // ---- answering -------------------------------------------------------------------------

  signalRoute(): RouteHandler {
    return async (request) => {
      if (request.method !== "POST") return new Response("POST an offer\n", { status: 405 });
      const text = await readBounded(request, signalBytesMax);
      if (text === null) return this.refuse(413, "the offer is too large");
      const nowMs = Date.now();
      const checked = checkSignal(this.options.keyring, text, { kind: "offer", to: this.identity, nowMs });
      if (!checked.ok) return this.refuse(checked.status, checked.reason);
      const { from, nonce } = checked.signal;
      if (from === this.identity) return this.refuse(400, "an offer from this node itself");
      if (!this.nonces.accept(nonce, nowMs)) return this.refuse(409, "the offer was seen already");
      const existing = this.links.get(from);
      // Both ends offered at once: the smaller identity's offer wins.
      if (existing !== undefined && existing.outgoing && !existing.open && this.identity < from) return this.refuse(409, "glare: this node's own offer wins");
      if (existing === undefined && this.links.size >= this.linksMax) return this.refuse(503, "too many connections");
      const queue = existing?.queue.splice(0) ?? [];
      if (existing !== undefined) this.drop(from);
      const pc = new this.addon.PeerConnection(`${this.identity}<${from}`, this.config);
      const link: Link = { pc, channel: null, open: false, outgoing: false, queue, lastHeardMs: nowMs, connectTimer: null };
      this.links.set(from, link);
      this.watch(from, link);
      pc.onDataChannel((channel) => {
        if (this.links.get(from) === link && link.channel === null) this.attach(from, link, channel);
        else channel.close();
      });
      try {
        pc.setRemoteDescription(checked.signal.sdp, "offer");
        const sdp = await gathered(pc, this.connectTimeoutMs);
        this.offersAnswered++;
        return Response.json(signSignal(this.options.keyring, { kind: "answer", from: this.identity, to: from, nonce, at: Date.now(), sdp }, checked.keyId));
      } catch (error) {
        if (this.links.get(from) === link) this.drop(from);
        return this.refuse(400, `cannot answer the offer: ${errorText(error)}`);
      }
    };
  }

  private refuse(status: number, reason: string): Response {
    this.offersRefused++;
    return new Response(`${reason}\n`, { status });
  }

  // ---- both ------------------------------------------------------------------------------

  private attach(key: string, link: Link, channel: NativeDataChannel): void {
    link.channel = channel;
    const from = endpointOfKey(key);
    channel.onOpen(() => {
      if (this.links.get(key) !== link) return;
      link.open = true;
      if (link.connectTimer !== null) clearTimeout(link.connectTimer);
      link.connectTimer = null;
      for (const bytes of link.queue.splice(0)) {
        try {
          channel.sendMessageBinary(bytes);
        } catch {
          break;
        }
      }
    });
    channel.onMessage((message) => {
      if (this.links.get(key) !== link || typeof message === "string") return;
      link.lastHeardMs = Date.now();
      this.handler(message instanceof Uint8Array ? message : new Uint8Array(message), from);
    });
    channel.onClosed(() => {
      if (this.links.get(key) === link) this.drop(key);
    });
    channel.onError(() => {
      if (this.links.get(key) === link) this.drop(key);
    });
  }

  private watch(key: string, link: Link): void {
    link.pc.onStateChange((state) => {
      if ((state === "failed" || state === "closed" || state === "disconnected") && this.links.get(key) === link) this.drop(key);
    });
  }

  private drop(key: string): void {
    const link = this.links.get(key);
    if (link === undefined) return;
    this.links.delete(key);
    if (link.connectTimer !== null) clearTimeout(link.connectTimer);
    link.connectTimer = null;
    try {
      link.channel?.close();
      link.pc.close();
    } catch {
      // Already closed by the other side.
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, link] of this.links) if (now - link.lastHeardMs > this.idleMs) this.drop(key);
    for (const [key, at] of this.retryAt) if (at <= now) this.retryAt.delete(key);
  }
}

/** The body as text, or null when it is longer than `bytesMax` (read no further than that). */
async function readBounded(request: Request, bytesMax: number): Promise<string | null> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (!(declared <= bytesMax)) return null;
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > bytesMax) {
      void reader.cancel().catch(() => {});
      return null;
    }
    parts.push(value);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return new TextDecoder().decode(bytes);
}

function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
}

/** Whether every host is on loopback, where a client's ICE may bind 127.0.0.1. */
export function allLoopback(hosts: readonly string[]): boolean {
  return hosts.every((host) => host.startsWith("127.") || host === "::1" || host === "localhost");
}

function enqueue(queue: Uint8Array[], bytes: Uint8Array, queueMax: number): void {
  if (queue.length >= queueMax) queue.shift();
  queue.push(bytes.slice());
}

/** The local description once every ICE candidate is in it. */
function gathered(pc: NativePeerConnection, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const finish = () => {
      const description = pc.localDescription();
      if (description === null) reject(new TransportError("no local description"));
      else resolve(description.sdp);
    };
    // Gathering often completes before a callback could be registered: check first.
    if (pc.gatheringState() === "complete") return finish();
    const timer = setTimeout(() => reject(new TransportError("ICE gathering timed out")), timeoutMs);
    pc.onGatheringStateChange((state) => {
      if (state !== "complete") return;
      clearTimeout(timer);
      finish();
    });
  });
}
