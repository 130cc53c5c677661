// UDP over node:dgram, which Bun, Deno and Node all provide. Deno uses it when its own
// datagram API is not enabled (it needs --unstable-net).

import * as dgram from "node:dgram";
import type { DatagramOptions, DatagramSocket, SocketAddress } from "./types.ts";

export async function openNodeDatagram({ local, onData, receiveBufferBytes }: DatagramOptions): Promise<DatagramSocket> {
  const socket = dgram.createSocket({ type: local.host.includes(":") ? "udp6" : "udp4", ...(receiveBufferBytes === undefined ? {} : { recvBufferSize: receiveBufferBytes }) });
  await new Promise<void>((resolve, reject) => {
    const failed = (error: Error) => reject(error);
    socket.once("error", failed);
    socket.bind(local.port, local.host, () => {
      socket.off("error", failed);
      resolve();
    });
  });
  socket.on("message", (message, info) => onData(new Uint8Array(message.buffer, message.byteOffset, message.byteLength), { host: info.address, port: info.port }));
  // Errors after binding (an ICMP "port unreachable" from a peer that is down) are the
  // network's answer, not ours: the protocol copes with loss.
  socket.on("error", () => {});
  let open = true;
  let granted: number | null = null;
  try {
    granted = receiveBufferBytes === undefined ? null : socket.getRecvBufferSize();
  } catch {
    // Not every runtime's node:dgram reports it.
  }
  return {
    port: socket.address().port,
    receiveBufferBytes: granted,
    send(bytes: Uint8Array, to: SocketAddress) {
      if (!open) return;
      try {
        socket.send(bytes, to.port, to.host, () => {});
      } catch {
        // Best effort, like the network.
      }
    },
    close() {
      if (!open) return;
      open = false;
      socket.close();
    },
  };
}
