// An in-memory datagram network for node tests: endpoints by "host:port", delivery on a
// later turn of the event loop, with links that can be cut and a hook to drop or mangle.

import type { Endpoint, ReceiveHandler, Transport } from "../../src/transport/transport.ts";

export class MemoryNetwork {
  private readonly handlers = new Map<string, ReceiveHandler>();
  readonly down = new Set<string>();
  delivered = 0;
  private nextPort = 40_000;

  open(host = "127.0.0.1", port = 0): Transport {
    const local = { host, port: port === 0 ? this.nextPort++ : port };
    const key = `${local.host}:${local.port}`;
    this.handlers.set(key, () => {});
    return {
      local,
      send: (bytes, to) => {
        const target = `${to.host}:${to.port}`;
        const copy = bytes.slice();
        setTimeout(() => {
          if (this.down.has(key) || this.down.has(target)) return;
          this.delivered++;
          this.handlers.get(target)?.(copy, local);
        }, 0);
      },
      onReceive: (handler) => {
        this.handlers.set(key, handler);
      },
      close: () => {
        this.handlers.delete(key);
      },
    };
  }

  /** Sends raw bytes to an endpoint, as an attacker or a broken peer would. */
  inject(bytes: Uint8Array, to: Endpoint, from: Endpoint = { host: "10.9.9.9", port: 9 }): void {
    this.handlers.get(`${to.host}:${to.port}`)?.(bytes, from);
  }
}
