// A view of the colony for the control plane that reads what discovery already spreads:
// node health from the gossiped peer tables of a few nodes, and cells' members from
// batched discovery lookups. Its cost per pass does not grow with the number of nodes
// (three peer-table requests, a page each per 500 nodes or so), and grows with the cells
// only by the lookups of the cells it rotates through (64 to a lookup).
//
// Health. Each pass asks `askPerPass` nodes (those gossip last called alive, in rotation)
// for their peer tables, and merges them: of the records for one node the greatest wins (the
// order gossip merges by: a restarted node's new generation outranks what was said of its
// previous life), and a node is alive when that record says so or any asked node heard from
// it within `heardRecentMs`. A node that is suspected or dead has been down since the later of
//  - the freshest evidence that it ran: the latest time an asked node heard from it, and
//  - the latest time it can have stopped, by gossip's rules: when this view first saw it
//    suspected, or, first seen dead, `suspectTimeoutMs` before that (a death is declared
//    only after a suspicion went unrefuted that long).
// So `downForMs` is never more than the node has really been down (a repair is never early).
// The price: the grace runs from the first suspicion the view sees (a round or three after
// the stop) or from `suspectTimeoutMs` before the first death it sees, so a repair comes that
// much after the grace; later, never unsafe.
//
// Cells. The registry is read from the control cell as ProbeView reads it. Each cell's
// incarnation and members come from discovery entries (the greater entry wins): cells not
// known yet and `lookupPerPass` more in rotation are looked up at a node gossip calls alive,
// 64 cells to a lookup. A cell the control plane just changed is looked up at its members
// (the leader pushes its entry when it applies the change) and left out of `cells()` until
// an entry shows the change, for `settlePassesMax` passes at most: planning it again from
// the members before the change would repeat the change.

import { readRegistry } from "./registry.ts";
import type { PhysaliaClient } from "../client/client.ts";
import { type CellAnswer, type CellEntry, type PeerRecord, type PeersAnswer, compareEntries, comparePeerRecords, discoveryLimits, isIdentity } from "../discovery/mod.ts";
import { nodePart } from "../wire/ids.ts";
import type { ColonyView, KnownCell, NodeHealth } from "./service.ts";

export interface GossipViewOptions {
  readonly client: PhysaliaClient;
  /** The color's nodes, by topology id. */
  readonly nodes: readonly string[];
  readonly controlCell: string;
  /** Peer tables asked for per pass (default 3); more only when none of them answers. */
  readonly askPerPass?: number;
  /** How long a node has to answer a peer-table request or a lookup (default 300 ms). */
  readonly askMs?: number;
  /** A node an asked node heard from within this long is alive, whatever its record says (default 2 s). */
  readonly heardRecentMs?: number;
  /** The nodes' gossip suspicion timeout (default discovery's, 6 s): how long before a death its node was already unreachable. */
  readonly suspectTimeoutMs?: number;
  /** Cells looked up again per pass, in rotation, besides new and changed ones (default 1,024: 16 lookups). */
  readonly lookupPerPass?: number;
  /** Lookups in flight at once (default 16). */
  readonly lookupConcurrency?: number;
  /** The registry is read again every this many passes (default 20), and at once after a creation. */
  readonly rescanEvery?: number;
  /** Passes a changed cell is held back while discovery does not show the change yet (default 10). */
  readonly settlePassesMax?: number;
  readonly now?: () => number;
}

/** What one pass asked, for tests and for the control plane's log. */
export interface GossipViewStats {
  peerRequests: number;
  lookups: number;
}

interface Known {
  readonly cell: KnownCell;
  /** The entry it came from; null for a cell the control plane created and no entry has shown yet. */
  readonly entry: CellEntry | null;
  /** What `cells()` hands the control plane: `cell` with only this color's members. */
  readonly shown: KnownCell;
}

interface Settling {
  /** What was known when the control plane changed the cell. */
  readonly before: Known | null;
  passes: number;
}

export class GossipView implements ColonyView {
  readonly stats: GossipViewStats = { peerRequests: 0, lookups: 0 };
  private readonly nodeIds: ReadonlySet<string>;
  private readonly now: () => number;
  /** When each node was last heard from by an asked node, on this view's clock. */
  private readonly heardAt = new Map<string, number>();
  /** Since when each node that is not alive can have been down at the latest (see the header). */
  private readonly downSince = new Map<string, number>();
  /** The latest identity each node's records named, with its generation. */
  private readonly identities = new Map<string, { readonly identity: string; readonly generation: number }>();
  /** The nodes the last pass found alive, in topology order. */
  private live: string[];
  private askCursor = 0;
  private lookupNodeCursor = 0;
  private readonly known = new Map<string, Known>();
  private readonly settling = new Map<string, Settling>();
  private names: string[] | null = null;
  /** Registered cells with no entry yet (not known, or created and not shown by discovery). */
  private readonly unknown = new Set<string>();
  /** What the last `cells()` returned, while nothing it depends on changed: a pass in which no entry changes costs nothing per cell. */
  private shown: KnownCell[] | null = null;
  private scans = 0;
  private cursor = 0;

  constructor(private readonly options: GossipViewOptions) {
    this.now = options.now ?? (() => performance.now());
    this.nodeIds = new Set(options.nodes);
    this.live = [...options.nodes];
  }

  created(cell: KnownCell): void {
    this.remember(cell, null);
    this.names = null;
  }

  changed(cell: string): void {
    this.settling.set(cell, { before: this.known.get(cell) ?? null, passes: 0 });
    this.shown = null;
  }

  private remember(cell: KnownCell, entry: CellEntry | null): void {
    this.known.set(cell.cell, { cell, entry, shown: { ...cell, members: cell.members.filter((m) => this.nodeIds.has(nodePart(m))) } });
    if (entry === null) this.unknown.add(cell.cell);
    else this.unknown.delete(cell.cell);
    this.shown = null;
  }

  // ---- health ---------------------------------------------------------------------------

  async health(): Promise<ReadonlyMap<string, NodeHealth>> {
    const started = this.now();
    const tables = await this.askTables();
    const now = this.now();
    const best = new Map<string, PeerRecord>();
    for (const { asked, records, startedAt } of tables) {
      for (const { record, heardAgoMs } of records) {
        const node = nodePart(record.identity);
        if (!this.nodeIds.has(node)) continue;
        const held = best.get(node);
        if (held === undefined || comparePeerRecords(record, held) > 0) best.set(node, record);
        const known = this.identities.get(node);
        if (isIdentity(record.identity) && (known === undefined || record.generation >= known.generation)) this.identities.set(node, { identity: record.identity, generation: record.generation });
        // An answer's ages count from when it was sent, which is no earlier than the request.
        if (heardAgoMs !== null) this.heardAt.set(node, Math.max(this.heardAt.get(node) ?? -Infinity, startedAt - heardAgoMs));
      }
      this.heardAt.set(asked, Math.max(this.heardAt.get(asked) ?? -Infinity, startedAt));
    }
    const heardRecentMs = this.options.heardRecentMs ?? 2_000;
    const out = new Map<string, NodeHealth>();
    const live: string[] = [];
    for (const node of this.options.nodes) {
      const record = best.get(node);
      // A node that never heard the node's own record holds only its seed (a bare id): the
      // identity is then the latest any table named.
      const identity = record !== undefined && isIdentity(record.identity) ? record.identity : (this.identities.get(node)?.identity ?? null);
      const heard = this.heardAt.get(node);
      const recentlyHeard = heard !== undefined && started - heard <= heardRecentMs;
      if ((record !== undefined && record.status === "alive") || recentlyHeard) {
        this.downSince.delete(node);
        live.push(node);
        out.set(node, { health: "alive", downForMs: 0, identity });
        continue;
      }
      // No answer at all counts as a suspicion seen now: the grace then runs from this pass.
      const status = record?.status ?? "suspected";
      let since = this.downSince.get(node);
      if (since === undefined) {
        since = status === "dead" ? now - (this.options.suspectTimeoutMs ?? discoveryLimits.suspectTimeoutMsDefault) : now;
        this.downSince.set(node, since);
      }
      if (heard !== undefined && heard > since) since = heard;
      out.set(node, { health: status === "dead" ? "dead" : "suspect", downForMs: Math.max(0, now - since), identity });
    }
    this.live = live;
    return out;
  }

  /** Peer tables of `askPerPass` nodes, alive ones first in rotation; more batches while none answers. */
  private async askTables(): Promise<{ asked: string; records: readonly { record: PeerRecord; heardAgoMs: number | null }[]; startedAt: number }[]> {
    const perPass = Math.max(1, this.options.askPerPass ?? 3);
    const liveSet = new Set(this.live);
    const rotated = this.live.length === 0 ? [] : [...this.live.slice(this.askCursor % this.live.length), ...this.live.slice(0, this.askCursor % this.live.length)];
    const order = [...rotated, ...this.options.nodes.filter((node) => !liveSet.has(node))];
    this.askCursor = (this.askCursor + perPass) % Math.max(1, this.live.length);
    const tables = [];
    for (let at = 0; at < order.length && tables.length === 0; at += perPass) {
      const batch = order.slice(at, at + perPass);
      const answers = await Promise.all(batch.map((node) => this.tableOf(node)));
      for (const table of answers) if (table !== null) tables.push(table);
    }
    return tables;
  }

  /** One node's whole peer table, page by page (one page up to about 500 nodes); null if it does not answer. */
  private async tableOf(node: string): Promise<{ asked: string; records: { record: PeerRecord; heardAgoMs: number | null }[]; startedAt: number } | null> {
    const records: { record: PeerRecord; heardAgoMs: number | null }[] = [];
    const startedAt = this.now();
    for (let start: number | null = 0; start !== null;) {
      this.stats.peerRequests++;
      const page: PeersAnswer | null = await this.options.client.peerTable(node, { start, deadlineMs: this.options.askMs ?? 300 }).catch(() => null);
      if (page === null) return records.length === 0 ? null : { asked: node, records, startedAt };
      records.push(...page.peers);
      // A page that makes no progress would loop: take what came.
      start = page.next !== null && page.next > start ? page.next : null;
    }
    return { asked: node, records, startedAt };
  }

  // ---- cells ----------------------------------------------------------------------------

  async cells(): Promise<readonly KnownCell[]> {
    if (this.names === null || ++this.scans % (this.options.rescanEvery ?? 20) === 0) {
      // Only a new read of the registry walks every cell: other passes cost what changed.
      this.names = (await readRegistry(this.options.client, this.options.controlCell)).names;
      const registered = new Set(this.names);
      for (const cell of this.known.keys()) if (!registered.has(cell)) this.known.delete(cell);
      for (const cell of this.settling.keys()) if (!registered.has(cell)) this.settling.delete(cell);
      this.unknown.clear();
      for (const cell of this.names) if (this.known.get(cell)?.entry == null) this.unknown.add(cell);
      this.shown = null;
    }
    const names = this.names;
    const todo = new Set<string>(this.unknown);
    const rotation = Math.min(this.options.lookupPerPass ?? 1_024, names.length);
    for (let i = 0; i < rotation; i++) todo.add(names[(this.cursor + i) % names.length] as string);
    this.cursor = names.length === 0 ? 0 : (this.cursor + rotation) % names.length;
    // Changed cells are asked of their members, whose leader pushed the change; the rest of a live node.
    const atMembers = new Map<string, string[]>();
    for (const cell of this.settling.keys()) {
      todo.delete(cell);
      const members = (this.known.get(cell)?.cell.members ?? []).map(nodePart).filter((node) => this.live.includes(node));
      for (const node of members.length > 0 ? members : [this.lookupNode()]) {
        const batch = atMembers.get(node) ?? [];
        batch.push(cell);
        atMembers.set(node, batch);
      }
    }
    const lookups: { node: string; cells: string[] }[] = [];
    for (const [node, cells] of atMembers) for (let i = 0; i < cells.length; i += discoveryLimits.lookupCellsMax) lookups.push({ node, cells: cells.slice(i, i + discoveryLimits.lookupCellsMax) });
    const rest = [...todo];
    for (let i = 0; i < rest.length; i += discoveryLimits.lookupCellsMax) lookups.push({ node: this.lookupNode(), cells: rest.slice(i, i + discoveryLimits.lookupCellsMax) });
    await this.lookUp(lookups);
    // A changed cell is held back until discovery shows the change, or for settlePassesMax passes.
    for (const [name, settling] of this.settling) {
      if (!this.known.has(name) || ++settling.passes <= (this.options.settlePassesMax ?? 10)) continue;
      this.settling.delete(name);
      this.shown = null;
    }
    if (this.shown === null) {
      const out: KnownCell[] = [];
      for (const [name, { shown }] of this.known) if (!this.settling.has(name)) out.push(shown);
      this.shown = out;
    }
    return this.shown;
  }

  /** The next node gossip calls alive, in rotation, to send a lookup to. */
  private lookupNode(): string {
    const pool = this.live.length > 0 ? this.live : this.options.nodes;
    return pool[this.lookupNodeCursor++ % pool.length] as string;
  }

  private async lookUp(lookups: readonly { node: string; cells: string[] }[]): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < lookups.length) {
        const { node, cells } = lookups[next++] as { node: string; cells: string[] };
        this.stats.lookups++;
        const answer = await this.options.client.lookupAt(node, cells, this.options.askMs ?? 300).catch(() => null);
        // Cells it did not answer (no answer, or more than fit one message) are asked again later.
        for (const cellAnswer of answer?.answers ?? []) this.take(cellAnswer);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.lookupConcurrency ?? 16, lookups.length) }, worker));
  }

  /** What one node said of one cell: its greatest entry, if greater than what is known. */
  private take(answer: CellAnswer): void {
    if (answer.status === "noSuchCell") return;
    const entries = answer.status === "moved" ? [answer.pointer, answer.entry] : [answer.entry];
    const entry = entries.reduce<CellEntry | null>((a, b) => (b === null ? a : a === null || compareEntries(b, a) > 0 ? b : a), null);
    if (entry === null) return;
    const held = this.known.get(answer.cell);
    if (held !== undefined && held.entry !== null && compareEntries(entry, held.entry) <= 0) return;
    this.remember({ cell: answer.cell, incarnation: entry.incarnation, members: [...entry.members] }, entry);
    const settling = this.settling.get(answer.cell);
    if (settling !== undefined && shows(entry, settling.before)) this.settling.delete(answer.cell);
  }
}

/** Whether an entry shows a membership change made after `before` was known. */
function shows(entry: CellEntry, before: Known | null): boolean {
  if (before === null) return true;
  if (before.entry === null) return entry.incarnation !== before.cell.incarnation || [...entry.members].sort().join() !== [...before.cell.members].sort().join();
  return entry.incarnation !== before.entry.incarnation || entry.version > before.entry.version;
}
