// The datagram transport behind one small interface, so UDP can be swapped for node:dgram,
// a WebRTC data channel, or an in-memory network in tests.

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export type ReceiveHandler = (bytes: Uint8Array, from: Endpoint) => void;

export interface Transport {
  /** The local endpoint actually bound (port 0 binds an ephemeral port). */
  readonly local: Endpoint;
  /** Sends one datagram, best effort: a full socket buffer or an unreachable peer just loses it. */
  send(bytes: Uint8Array, to: Endpoint): void;
  onReceive(handler: ReceiveHandler): void;
  close(): void;
}
