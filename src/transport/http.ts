// The node's small HTTP endpoint (loopback by default): /metrics in the Prometheus text
// format and /status as JSON.

import type { Endpoint } from "./transport.ts";

export interface StatusSource {
  metricsText(): string;
  status(): Record<string, unknown>;
  cellStatus(cell: string): Record<string, unknown> | null;
}

export interface StatusServer {
  readonly local: Endpoint;
  stop(): void;
}

export function serveStatus(local: Endpoint, source: StatusSource): StatusServer {
  const server = Bun.serve({
    hostname: local.host,
    port: local.port,
    fetch(request) {
      const url = new URL(request.url);
      const path = url.pathname;
      if (path === "/metrics") return new Response(source.metricsText(), { headers: { "content-type": "text/plain; version=0.0.4" } });
      if (path === "/status") {
        const cell = url.searchParams.get("cell");
        if (cell === null) return Response.json(source.status());
        const status = source.cellStatus(cell);
        return status === null ? Response.json({ cell, hosted: false }, { status: 404 }) : Response.json(status);
      }
      return new Response("not found: try /metrics or /status\n", { status: 404 });
    },
  });
  return { local: { host: local.host, port: server.port ?? local.port }, stop: () => void server.stop(true) };
}
