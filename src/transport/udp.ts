// UDP on Bun's datagram sockets.

import type { Endpoint, ReceiveHandler, Transport } from "./transport.ts";

export class TransportError extends Error {
  override name = "TransportError";
}

export async function openUdp(local: Endpoint): Promise<Transport> {
  let handler: ReceiveHandler = () => {};
  let socket: Bun.udp.Socket<"uint8array">;
  try {
    socket = await Bun.udpSocket<"uint8array">({
      hostname: local.host,
      port: local.port,
      binaryType: "uint8array",
      socket: {
        data(_socket, data, port, address) {
          handler(data, { host: address, port });
        },
      },
    });
  } catch (error) {
    throw new TransportError(`Cannot listen on udp ${local.host}:${local.port}: ${error instanceof Error ? error.message : String(error)}`);
  }
  return {
    local: { host: local.host, port: socket.port },
    send(bytes, to) {
      try {
        socket.send(bytes, to.port, to.host);
      } catch {
        // Best effort, like the network itself: the protocol retransmits what matters.
      }
    },
    onReceive(next) {
      handler = next;
    },
    close() {
      socket.close();
    },
  };
}
