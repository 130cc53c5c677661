// Whether the ports a node or a colony needs are free, checked before anything starts, so
// that a second colony on the same ports is refused with its cause instead of half
// starting and sending frames to the first.

import { errorText, runtime } from "../runtime/mod.ts";
import type { Endpoint } from "../transport/transport.ts";

export interface PortUse {
  readonly endpoint: Endpoint;
  readonly protocol: "udp" | "tcp";
  /** What the port is for, in a message: "n3's node port". */
  readonly role: string;
}

/** Whether an error says the address is taken (the runtimes word it differently). */
export function isAddressInUse(error: unknown): boolean {
  return /EADDRINUSE|in use/i.test(errorText(error));
}

/** Binds each port for a moment and returns, for each one that cannot be bound, why. */
export async function unavailablePorts(uses: readonly PortUse[]): Promise<string[]> {
  const problems: string[] = [];
  for (const { endpoint, protocol, role } of uses) {
    try {
      if (protocol === "udp") (await runtime.openDatagram({ local: endpoint, onData: () => {} })).close();
      else (await runtime.serveHttp(endpoint, () => new Response(""))).stop();
    } catch (error) {
      problems.push(`${protocol} ${endpoint.host}:${endpoint.port} (${role}) ${isAddressInUse(error) ? "is in use" : `cannot be bound: ${errorText(error)}`}`);
    }
  }
  return problems;
}

/** Hosts the metrics and status endpoint may listen on: it shows a node's cells and figures, so only this machine may see it. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
