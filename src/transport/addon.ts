// The native half of the data-channel transport: libdatachannel through node-datachannel's
// N-API addon. Only the few calls the transport makes are typed here. The addon is loaded on
// first use, so nodes without data-channel links never load it.
//
// Run from sources, it comes from the node-datachannel package. A compiled executable cannot
// find it that way (the package requires its platform package by a computed name, which the
// compiler cannot follow), so build.ts compiles an entry that imports the platform's .node
// file statically, which embeds it, and hands it over with `provideDatachannelAddon` before
// anything else runs.

import { errorText } from "../runtime/mod.ts";

export interface NativeDataChannel {
  sendMessageBinary(buffer: Uint8Array): boolean;
  isOpen(): boolean;
  close(): void;
  onOpen(callback: () => void): void;
  onClosed(callback: () => void): void;
  onError(callback: (error: string) => void): void;
  onMessage(callback: (message: string | Uint8Array | ArrayBuffer) => void): void;
}

export interface NativePeerConnection {
  close(): void;
  setRemoteDescription(sdp: string, type: "offer" | "answer"): void;
  localDescription(): { type: string; sdp: string } | null;
  gatheringState(): string;
  createDataChannel(label: string, config: { unordered: boolean; maxRetransmits: number }): NativeDataChannel;
  onGatheringStateChange(callback: (state: string) => void): void;
  onStateChange(callback: (state: string) => void): void;
  onDataChannel(callback: (channel: NativeDataChannel) => void): void;
}

export interface DatachannelAddon {
  readonly PeerConnection: new (name: string, config: { iceServers: string[]; bindAddress?: string }) => NativePeerConnection;
  cleanup(): void;
}

export class AddonError extends Error {
  override name = "AddonError";
}

let addon: DatachannelAddon | null = null;

/** Installs the addon (a compiled executable's entry does, from the embedded .node file). */
export function provideDatachannelAddon(native: unknown): void {
  addon = checked(native);
}

export async function loadDatachannelAddon(): Promise<DatachannelAddon> {
  if (addon !== null) return addon;
  let module: { default?: unknown };
  try {
    module = (await import("node-datachannel")) as { default?: unknown };
  } catch (error) {
    throw new AddonError(`Cannot load node-datachannel, which data-channel links need: ${errorText(error)}`);
  }
  addon = checked(module.default ?? module);
  return addon;
}

function checked(native: unknown): DatachannelAddon {
  const candidate = native as Partial<DatachannelAddon> | null;
  if (candidate === null || typeof candidate !== "object" || typeof candidate.PeerConnection !== "function" || typeof candidate.cleanup !== "function") {
    throw new AddonError("Cannot use the data-channel addon: it has no PeerConnection");
  }
  return candidate as DatachannelAddon;
}
