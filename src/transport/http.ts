// The node's small HTTP endpoints: /metrics in the Prometheus text format and /status as
// JSON (on loopback by default), and, for nodes with data-channel links, /signal on the
// node's own address (datachannel.ts). The server itself is the runtime's (src/runtime).

import { errorText, runtime } from "../runtime/mod.ts";
import type { Endpoint } from "./transport.ts";

export interface StatusSource {
  metricsText(): string;
  status(): Record<string, unknown>;
  cellStatus(cell: string): Record<string, unknown> | null;
  /** False while the node starts: /metrics and /status then answer 503. Ready when missing. */
  ready?(): boolean;
}

export interface StatusServer {
  readonly local: Endpoint;
  stop(): void;
}

export type RouteHandler = (request: Request, url: URL) => Response | Promise<Response>;

export class HttpError extends Error {
  override name = "HttpError";
}

/** Serves the given paths; any other path is a 404 naming the ones served. */
export async function serveRoutes(local: Endpoint, routes: Readonly<Record<string, RouteHandler>>): Promise<StatusServer> {
  const paths = Object.keys(routes);
  let server;
  try {
    server = await runtime.serveHttp(local, (request) => {
      const url = new URL(request.url);
      const route = Object.hasOwn(routes, url.pathname) ? routes[url.pathname] : undefined;
      if (route === undefined) return new Response(`not found: try ${paths.join(" or ")}\n`, { status: 404 });
      return route(request, url);
    });
  } catch (error) {
    throw new HttpError(`Cannot serve http on ${local.host}:${local.port}: ${errorText(error)}`);
  }
  return { local: { host: local.host, port: server.port }, stop: () => server.stop() };
}

export function statusRoutes(source: StatusSource): Record<string, RouteHandler> {
  const starting = () => source.ready !== undefined && !source.ready();
  const unavailable = () => new Response("starting\n", { status: 503 });
  return {
    "/metrics": () => starting() ? unavailable() : new Response(source.metricsText(), { headers: { "content-type": "text/plain; version=0.0.4" } }),
    "/status": (_request, url) => {
      if (starting()) return unavailable();
      const cell = url.searchParams.get("cell");
      if (cell === null) return Response.json(source.status());
      const status = source.cellStatus(cell);
      return status === null ? Response.json({ cell, hosted: false }, { status: 404 }) : Response.json(status);
    },
  };
}

export function serveStatus(local: Endpoint, source: StatusSource): Promise<StatusServer> {
  return serveRoutes(local, statusRoutes(source));
}
