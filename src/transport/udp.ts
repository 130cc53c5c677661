// UDP, on whichever datagram socket the runtime does best (src/runtime).

import { errorText, runtime } from "../runtime/mod.ts";
import type { Endpoint, ReceiveHandler, Transport } from "./transport.ts";

export class TransportError extends Error {
  override name = "TransportError";
}

/**
 * The receive buffer a socket asks for: 4 MiB holds about 5,000 small datagrams, a quarter
 * second of a flood of 20,000 requests a second, where Linux's default 208 KiB held about
 * 270 and a node busy for 20 ms lost its peers' answers behind clients' requests.
 */
export const receiveBufferBytesDefault = 4 * 1024 * 1024;

export async function openUdp(local: Endpoint, receiveBufferBytes: number = receiveBufferBytesDefault): Promise<Transport> {
  let handler: ReceiveHandler = () => {};
  let socket;
  try {
    socket = await runtime.openDatagram({ local, onData: (bytes, from) => handler(bytes, from), receiveBufferBytes });
  } catch (error) {
    throw new TransportError(`Cannot listen on udp ${local.host}:${local.port}: ${errorText(error)}`);
  }
  return {
    local: { host: local.host, port: socket.port },
    send: (bytes, to) => socket.send(bytes, to),
    onReceive(next) {
      handler = next;
    },
    close: () => socket.close(),
  };
}
