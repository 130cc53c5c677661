// UDP, on whichever datagram socket the runtime does best (src/runtime).

import { errorText, runtime } from "../runtime/mod.ts";
import type { Endpoint, ReceiveHandler, Transport } from "./transport.ts";

export class TransportError extends Error {
  override name = "TransportError";
}

export async function openUdp(local: Endpoint): Promise<Transport> {
  let handler: ReceiveHandler = () => {};
  let socket;
  try {
    socket = await runtime.openDatagram({ local, onData: (bytes, from) => handler(bytes, from) });
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
