// The colony dashboard each node serves at `/` on its loopback status endpoint: a page
// (plain HTML, CSS and JavaScript from strings, nothing to build) that draws the colony by
// row, rack and power domain, each node in its color with its health, the cells with their
// leaders and replicas, and each node's goodput, p99 latency and dropped frames over the
// last minutes. The page polls `/colony.json` (the topology) and `/node.json?node=ID` for
// each node; this node answers for itself and fetches the others' `/node.json` from their
// status endpoints when it can reach them (on one machine, as in `physalia dev`). A node
// it cannot reach is drawn from what this node knows of it: whether it hears its heartbeats.

import type { RouteHandler } from "../http.ts";
import { dashboardPage } from "./page.ts";

/** A node of the topology as the dashboard draws it. */
export interface ColonyMember {
  readonly id: string;
  readonly row: string;
  readonly rack: string;
  readonly power: string;
  readonly color: string;
  readonly address: string;
  /** Where this node can fetch the member's /node.json ("http://127.0.0.1:8103"), or null. */
  readonly statusUrl: string | null;
}

export interface CellView {
  readonly cell: string;
  readonly role: string;
  readonly leader: string | null;
  readonly applied: number;
  readonly members: readonly string[] | null;
}

export interface HistoryPointView {
  readonly atMs: number;
  readonly goodputPerSecond: number;
  readonly rejectionsPerSecond: number;
  readonly droppedPerSecond: number;
  readonly p99Ms: number;
}

/** What one node says of itself at /node.json. */
export interface NodeView {
  readonly id: string;
  readonly identity: string;
  readonly color: string;
  readonly peers: readonly { readonly id: string; readonly alive: boolean }[];
  readonly cellsHosted: number;
  readonly cellsLeading: number;
  /** The first cells by name (a node may host a hundred thousand; the page shows a few). */
  readonly cells: readonly CellView[];
  readonly history: readonly HistoryPointView[];
}

export interface DashboardOptions {
  readonly self: string;
  readonly colony: readonly ColonyMember[];
  /** This node's view, or null while it starts. */
  readonly view: () => NodeView | null;
  readonly fetchTimeoutMs?: number;
}

const json = (body: unknown, status = 200) => Response.json(body, { status, headers: { "cache-control": "no-store" } });

export function dashboardRoutes(options: DashboardOptions): Record<string, RouteHandler> {
  const { self, colony } = options;
  const members = new Map(colony.map((m) => [m.id, m]));
  const page = dashboardPage();
  return {
    "/": () => new Response(page, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } }),
    "/colony.json": () => json({ self, nodes: colony.map(({ statusUrl: _, ...rest }) => ({ ...rest, reachable: _ !== null })) }),
    "/node.json": async (_request, url) => {
      const id = url.searchParams.get("node") ?? self;
      if (id === self) {
        const view = options.view();
        return view === null ? json({ id, starting: true }, 503) : json(view);
      }
      const member = members.get(id);
      if (member === undefined) return json({ id, error: "not a node of this colony" }, 404);
      if (member.statusUrl === null) return json({ id, reachable: false }, 502);
      try {
        // Never ?node= on: the member answers for itself, so a request cannot bounce between nodes.
        const response = await fetch(`${member.statusUrl}/node.json`, { signal: AbortSignal.timeout(options.fetchTimeoutMs ?? 800) });
        if (!response.ok) return json({ id, reachable: false, status: response.status }, 502);
        return json(await response.json());
      } catch {
        return json({ id, reachable: false }, 502);
      }
    },
  };
}
