// Game-day faults for a dev colony's nodes: a node started with --game-day can be cut off
// from every peer and client (a partition) and healed again, through its loopback status
// endpoint (POST /game-day/isolate and /game-day/heal), which `physalia dev partition n3`
// calls. The process keeps running, as on the far side of a real partition: its replicas
// campaign and time out, and must rejoin cleanly when the link heals. Killing and pausing
// are signals, sent by dev itself.

import type { RouteHandler } from "../transport/http.ts";
import type { Transport } from "../transport/transport.ts";

export interface Isolatable {
  readonly transport: Transport;
  readonly routes: Readonly<Record<string, RouteHandler>>;
  readonly isolated: () => boolean;
}

/** Wraps a node's transport so that, while isolated, nothing goes out and nothing comes in. */
export function isolatable(inner: Transport): Isolatable {
  let isolated = false;
  const transport: Transport = {
    local: inner.local,
    send: (bytes, to) => {
      if (!isolated) inner.send(bytes, to);
    },
    onReceive: (handler) => inner.onReceive((bytes, from) => {
      if (!isolated) handler(bytes, from);
    }),
    close: () => inner.close(),
  };
  const set = (value: boolean): RouteHandler => (request) => {
    if (request.method !== "POST") return new Response("POST only\n", { status: 405 });
    isolated = value;
    return Response.json({ isolated });
  };
  return { transport, routes: { "/game-day/isolate": set(true), "/game-day/heal": set(false) }, isolated: () => isolated };
}
