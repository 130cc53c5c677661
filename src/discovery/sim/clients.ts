// Clients in the discovery simulation: each runs the real ClientDiscovery against the
// simulated nodes, through the simulated network (its latency and loss, and faults that cut
// every client off), looks up random cells one after another, and times out a lookup the way
// PhysaliaClient does. It measures how long a client takes to find a cell, and whether every
// client that wants a cell finds it once the network lets it: a client that gives up for good
// (as one did when every node it asked had timed out) leaves its want open at the end.

import { Rng } from "../../random.ts";
import { ClientDiscovery } from "../client.ts";
import type { CellEntry } from "../entry.ts";
import type { PeerSeed } from "../peers.ts";
import type { EventQueue } from "./events.ts";

export interface ClientsSpec {
  readonly count: number;
  /** Mean pause between one cell found and the next wanted (uniform over 0 to twice this). */
  readonly lookupEveryMs: number;
  /** Default 300, as PhysaliaClient's. */
  readonly lookupTimeoutMs?: number;
  /** Added to each way of a client's lookup (a slow link, a data-channel connection still opening); default 0. */
  readonly extraLatencyMs?: number;
}

export interface ClientsReport {
  readonly clients: number;
  readonly wants: number;
  readonly found: number;
  /** Wants still open at the end that began more than `openGraceMs` before it. */
  readonly stuck: number;
  readonly lookupsSent: number;
  readonly lookupsTimedOut: number;
  /** From wanting a cell to holding its entry, in simulated seconds. */
  readonly findSeconds: Summary;
}

export interface Summary {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** What the clients need from the colony. */
export interface ClientNetwork {
  readonly queue: EventQueue;
  readonly seeds: readonly PeerSeed[];
  /** Sends a lookup to node `to`; `reply` runs if an answer comes back (never when lost, cut off, or the node is down). */
  lookup(to: number, wire: unknown, reply: (wire: unknown) => void): void;
  /** A cell to want: its name and incarnation. */
  pickCell(rng: Rng): { readonly name: string; readonly incarnation: string } | null;
}

/** A want open this long at the end counts as stuck: the slowest legitimate find (a whole round of timeouts, backed off) is well under it. */
export const openGraceMs = 30_000;
const pollMs = 100;

interface Want {
  readonly cell: string;
  readonly incarnation: string;
  readonly startMs: number;
}

class SimClient {
  readonly discovery: ClientDiscovery;
  want: Want | null = null;
  private polling = false;
  /** Lookups sent and neither answered nor timed out yet. */
  private readonly inFlight = new Set<number>();

  constructor(private readonly clients: SimClients, readonly rng: Rng) {
    // A small cache, so that most wants are fresh lookups rather than cache hits.
    this.discovery = new ClientDiscovery({ seeds: clients.network.seeds, rng, cellsMax: 4, lookupRetryMs: 500 });
  }

  begin(): void {
    const picked = this.clients.network.pickCell(this.rng);
    if (picked === null) return;
    this.want = { cell: picked.name, incarnation: picked.incarnation, startMs: this.clients.network.queue.nowMs };
    this.clients.wants++;
    this.drive();
  }

  drive(): void {
    const want = this.want;
    if (want === null) return;
    const { queue } = this.clients.network;
    const route = this.discovery.route(want.cell, queue.nowMs);
    if (route.lookup !== null) this.send(route.lookup.nodeId, route.lookup.message.id, route.lookup.wire);
    if (holds(route.entry, want)) {
      this.clients.found(queue.nowMs - want.startMs);
      this.want = null;
      queue.at(queue.nowMs + this.rng.nextFloat() * 2 * this.clients.spec.lookupEveryMs, () => this.begin());
      return;
    }
    if (!this.polling) {
      this.polling = true;
      queue.at(queue.nowMs + pollMs, () => {
        this.polling = false;
        this.drive();
      });
    }
  }

  private send(nodeId: string, id: number, wire: unknown): void {
    const { network } = this.clients;
    this.clients.lookupsSent++;
    this.inFlight.add(id);
    network.lookup(Number(nodeId.slice(1)), wire, (answer) => {
      // A late answer (after its timeout) is handed over too, as PhysaliaClient does.
      this.inFlight.delete(id);
      this.discovery.receive(answer, network.queue.nowMs);
      this.drive();
    });
    network.queue.at(network.queue.nowMs + (this.clients.spec.lookupTimeoutMs ?? 300), () => {
      if (!this.inFlight.delete(id)) return;
      this.clients.lookupsTimedOut++;
      this.discovery.lookupFailed(id, network.queue.nowMs);
      this.drive();
    });
  }
}

function holds(entry: CellEntry | null, want: Want): boolean {
  return entry !== null && entry.incarnation === want.incarnation;
}

export class SimClients {
  private readonly clients: SimClient[] = [];
  private readonly findMs: number[] = [];
  wants = 0;
  lookupsSent = 0;
  lookupsTimedOut = 0;

  constructor(readonly network: ClientNetwork, readonly spec: ClientsSpec, seed: number) {
    const rng = new Rng(seed);
    for (let i = 0; i < spec.count; i++) this.clients.push(new SimClient(this, new Rng(rng.nextUint32())));
  }

  start(): void {
    for (const client of this.clients) this.network.queue.at(this.network.queue.nowMs + client.rng.nextFloat() * this.spec.lookupEveryMs, () => client.begin());
  }

  found(ms: number): void {
    this.findMs.push(ms);
  }

  /** `summarize` is the colony's distribution of a list of values (here seconds). */
  report(summarize: (values: readonly number[]) => Summary): ClientsReport {
    const now = this.network.queue.nowMs;
    const stuck = this.clients.filter((c) => c.want !== null && now - c.want.startMs > openGraceMs).length;
    return {
      clients: this.clients.length, wants: this.wants, found: this.findMs.length, stuck,
      lookupsSent: this.lookupsSent, lookupsTimedOut: this.lookupsTimedOut,
      findSeconds: summarize(this.findMs.map((ms) => ms / 1000)),
    };
  }
}
