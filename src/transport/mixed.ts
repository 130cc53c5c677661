// A node's or client's links when some of them are data channels: each remote is reached
// over the transport its topology entry names, and a link uses data channels when either
// end is a data-channel node (a data-channel node may have no raw UDP at all).

import type { SignalKeys } from "./signal.ts";
import { type DatachannelTransport, allLoopback, openDatachannel } from "./datachannel.ts";
import type { Endpoint, ReceiveHandler, Transport } from "./transport.ts";
import { openUdp } from "./udp.ts";

export type LinkKind = "udp" | "datachannel";

export interface Remote {
  readonly address: Endpoint;
  readonly transport: LinkKind;
}

export interface LinkOptions {
  /** The node itself (its address and transport), or null for a client. */
  readonly self: Remote | null;
  /** Everyone this side may send to: a node's peers, or a client's nodes. */
  readonly remotes: readonly Remote[];
  readonly keyring: SignalKeys;
  /** Where a client binds its UDP socket (default 0.0.0.0, an ephemeral port). */
  readonly clientUdp?: Endpoint;
}

/** Opens the transports the links need: UDP, data channels, or both behind one Transport. */
export async function openLinks(options: LinkOptions): Promise<Transport> {
  const { self, remotes, keyring } = options;
  const selfKind = self?.transport ?? "udp";
  const overChannels = remotes.filter((r) => selfKind === "datachannel" || r.transport === "datachannel").map((r) => r.address);
  // A UDP node keeps its UDP socket even when all its peers use data channels: UDP clients
  // reach it there. It also answers offers when any peer is a data-channel node, which calls it.
  const needChannels = overChannels.length > 0 || selfKind === "datachannel";
  const needUdp = self === null ? overChannels.length < remotes.length : selfKind === "udp";
  const local = self?.address ?? options.clientUdp ?? { host: "0.0.0.0", port: 0 };
  if (!needChannels) return openUdp(local);
  // A client binds ICE to loopback only when every node it calls is there.
  const clientBind = allLoopback(overChannels.map((e) => e.host)) ? "127.0.0.1" : null;
  const channels = await openDatachannel(self === null ? { keyring, bindHost: clientBind } : { keyring, local: self.address, answer: true });
  channels.addPeers(overChannels);
  if (!needUdp) return channels;
  let udp: Transport;
  try {
    udp = await openUdp(local);
  } catch (error) {
    channels.close();
    throw error;
  }
  return mixTransports(udp, channels);
}

/** Sends over `channels` what it owns and over `udp` the rest; receives from both. */
export function mixTransports(udp: Transport, channels: DatachannelTransport): Transport {
  return {
    local: udp.local,
    send(bytes, to) {
      if (channels.owns(to)) channels.send(bytes, to);
      else udp.send(bytes, to);
    },
    onReceive(handler: ReceiveHandler) {
      udp.onReceive(handler);
      channels.onReceive(handler);
    },
    close() {
      udp.close();
      channels.close();
    },
  };
}
