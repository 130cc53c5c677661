// UDP on Bun's datagram sockets.

import type { Endpoint, ReceiveHandler, Transport } from "./transport.ts";

/** Pending socket errors a send may have to clear before it goes out. */
const sendAttemptsMax = 8;

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
        // An ICMP "port unreachable" from a peer that is down surfaces as ECONNREFUSED on the
        // socket. It is the network's answer, not our error: the protocol copes with loss.
        error() {},
      },
    });
  } catch (error) {
    throw new TransportError(`Cannot listen on udp ${local.host}:${local.port}: ${error instanceof Error ? error.message : String(error)}`);
  }
  return {
    local: { host: local.host, port: socket.port },
    send(bytes, to) {
      // Linux reports an ICMP "port unreachable" (a peer that is down) on the socket's next
      // call, so a send to a live peer can throw ECONNREFUSED for an earlier send to a dead
      // one. Throwing consumed that error: send again. Swallowing it instead silently lost
      // the datagram, and a colony with dead nodes could not elect a leader.
      for (let attempt = 0; attempt < sendAttemptsMax; attempt++) {
        try {
          socket.send(bytes, to.port, to.host);
          return;
        } catch {
          // Try again: each throw clears one pending error.
        }
      }
      // Best effort beyond that, like the network itself: the protocol retransmits.
    },
    onReceive(next) {
      handler = next;
    },
    close() {
      socket.close();
    },
  };
}
