// `physalia node`: one node process. It reads its topology, keys and log, recovers its
// replicas, listens on its UDP address, serves /metrics and /status on loopback, and runs
// until SIGTERM or SIGINT.

import { existsSync, readdirSync, rmSync } from "node:fs";
import type { Topology } from "../control/topology/types.ts";
import { renderProcessMetrics } from "../node/metrics.ts";
import { type CellView, type ColonyMember, type NodeView, dashboardRoutes } from "../transport/dashboard/mod.ts";
import { nodePart } from "../wire/ids.ts";
import { type Isolatable, isolatable } from "./gameday.ts";
import { watchParent } from "./orphan.ts";
import { version } from "./version.ts";
import { PhysaliaNode } from "../node/node.ts";
import type { Transport } from "../transport/transport.ts";
import { openLog, LogOpenError, moveLogAside } from "../storage/mod.ts";
import { errorText, runtime } from "../runtime/mod.ts";
import { type StatusServer, type StatusSource, serveRoutes, statusRoutes } from "../transport/http.ts";
import { UsageError, parseFlags } from "./args.ts";
import { CliError, colorEndpoints, endpointOf, nodeColors, readKeys, readTopology } from "./colony.ts";
import { openClientLinks, openNodeLinks } from "./links.ts";
import { controlCellOf } from "../control/service.ts";
import { type RejoinIntent, type Rejoiner, readIntent, startRejoining, writeIntent } from "./rejoin.ts";
import { checkDirectory, lockDirectory } from "./lock.ts";
import { isAddressInUse, isLoopbackHost } from "./ports.ts";

export const nodeUsage = `usage: physalia node --topology FILE --id NODE --data DIR --keys FILE [--metrics HOST:PORT] [--exit-with-parent] [--game-day]
  --topology FILE    the colony's topology (JSON; see docs/placement.md)
  --id NODE          this node's id in the topology; it listens on that node's address (UDP, or data-channel
                     signalling on TCP at the same port when it or a peer has "transport": "datachannel")
  --data DIR         where the node keeps its log (created if missing)
  --keys FILE        the node key file of this node's color (physalia keys generate writes node-<color>.json)
  --metrics H:P      where /metrics, /status and the colony dashboard (/) are served, on loopback only
                     (default 127.0.0.1:<udp port + 1000>)
  --exit-with-parent stop when the process that started this one ends (physalia dev starts its nodes so)
  --game-day         accept POST /game-day/isolate and /game-day/heal on the status endpoint, which cut this
                     node off from every peer and client and join it again (physalia dev partition NODE)`;

export async function nodeCommand(args: string[], print: (line: string) => void = console.log): Promise<number> {
  const flags = parseFlags(args, {
    topology: { type: "string" },
    id: { type: "string" },
    data: { type: "string" },
    keys: { type: "string" },
    metrics: { type: "string" },
    "exit-with-parent": { type: "bool" },
    "game-day": { type: "bool" },
  });
  const id = flags.id as string | undefined;
  const data = flags.data as string | undefined;
  if (id === undefined) throw new UsageError("--id NODE is required");
  if (data === undefined) throw new UsageError("--data DIR is required");
  const topology = await readTopology(flags.topology as string | undefined);
  const me = topology.nodes.find((n) => n.id === id);
  if (me === undefined) throw new CliError(`Cannot start node ${id}: it is not in the topology`);
  const keysPath = flags.keys as string | undefined;
  const { keys } = await readKeys(keysPath, ["node"]);
  if (keys.color !== me.color) throw new CliError(`Cannot start node ${id}: ${keysPath} is the key file of color ${keys.color}, and ${id} is ${me.color}`);
  const local = endpointOf(me.address);
  const metricsAt = flags.metrics === undefined ? { host: "127.0.0.1", port: local.port + 1000 } : endpointOf(flags.metrics as string);
  if (!isLoopbackHost(metricsAt.host)) throw new UsageError(`--metrics must be on loopback (127.0.0.1 or ::1), not ${metricsAt.host}: /metrics and /status show this node's cells to whoever can reach them`);
  checkDirectory(data);
  // Nodes of different colors never talk to each other.
  const peers = colorEndpoints(topology, me.color);
  peers.delete(id);

  // The lock comes first: a second process on this directory is refused for that reason.
  // Then everything that can fail for reasons outside the directory (an address in use, a
  // port without permission) is tried before the log is touched, so a node that cannot
  // start leaves no half-created log behind, and no directory it created.
  const existed = existsSync(data);
  let lock = await lockDirectory(data);
  const abandon = () => {
    lock.release();
    if (!existed) rmSync(data, { recursive: true, force: true });
  };
  let transport: Transport;
  let gameDay: Isolatable | null = null;
  try {
    transport = await openNodeLinks(topology, me, keys);
    if (flags["game-day"] === true) {
      gameDay = isolatable(transport);
      transport = gameDay.transport;
    }
  } catch (error) {
    abandon();
    if (isAddressInUse(error)) throw new CliError(`Cannot start node ${id}: its address ${me.address} is in use (another node, or another colony on the same ports?)`);
    throw error;
  }
  const source = new LateStatusSource();
  let status: StatusServer;
  try {
    status = await serveRoutes(metricsAt, {
      ...statusRoutes(source),
      ...dashboardRoutes({ self: id, colony: colonyMembers(topology, me.color), view: () => source.view() }),
      ...(gameDay?.routes ?? {}),
    });
  } catch (error) {
    transport.close();
    abandon();
    if (isAddressInUse(error)) throw new CliError(`Cannot start node ${id}: its metrics port ${metricsAt.host}:${metricsAt.port} is in use (another node, or another colony on the same ports?)`);
    throw new CliError(`Cannot serve metrics on ${metricsAt.host}:${metricsAt.port}: ${errorText(error)}`);
  }
  const unbind = () => {
    status.stop();
    transport.close();
  };

  let opened;
  try {
    opened = await openLog(data);
  } catch (error) {
    unbind();
    abandon();
    if (error instanceof LogOpenError) throw new CliError(error.message);
    throw error;
  }
  const { damage, torn } = opened;
  if (damage.length === 0 && torn !== null) {
    // Bytes no completed sync covered: nothing in them was acknowledged.
    print(`node ${id}: discarded a torn tail at segment ${torn.segment} offset ${torn.offset} (${torn.lostBytes} bytes, never acknowledged)`);
  }
  const first = damage[0];
  if (first !== undefined) {
    // Records that were synced, and so possibly acknowledged, are gone. A node must never
    // vote with state it does not have: it keeps the damaged log aside and starts on a fresh
    // directory, whose new incarnation makes it a stranger to every cell, and it rejoins
    // each cell the readable records name (and any a peer names) as that stranger.
    const former = `${id}~${opened.incarnation}`;
    const cells = [...opened.records.keys()];
    lock.release();
    let aside: string;
    try {
      aside = await moveLogAside(data);
    } catch (error) {
      unbind();
      throw new CliError(errorText(error));
    }
    try {
      lock = await lockDirectory(data);
      opened = await openLog(data);
      // The intent is durable before the node does anything else, so a restart resumes it.
      writeIntent(data, { former, cells });
    } catch (error) {
      unbind();
      throw error instanceof LogOpenError ? new CliError(error.message) : new CliError(errorText(error));
    }
    print(
      `node ${id}: its log was damaged in ${damage.length} place(s), first at segment ${first.segment} offset ${first.offset} (${first.reason}: ${first.detail}); ` +
      `moved it to ${aside}; starting empty as ${id}~${opened.incarnation} and rejoining ${cells.length} known cells in place of ${former}, and any other cell a peer names`,
    );
  }
  const { log, records } = opened;
  if (log === null) {
    unbind();
    lock.release();
    throw new CliError(`Cannot open log: ${data} is damaged although it was just created: ${opened.damage[0]?.detail ?? ""}`);
  }
  const identity = `${id}~${opened.incarnation}`;
  let intent: RejoinIntent | null;
  try {
    intent = readIntent(data);
  } catch (error) {
    unbind();
    lock.release();
    throw new CliError(errorText(error));
  }

  let exiting = false;
  // Set once the node runs; a peer's message can arrive before that and is then learnt later.
  let rejoiner: Rejoiner | null = null;
  const early: string[] = [];
  const node = new PhysaliaNode({
    id: identity, peers, keys, nodeColors: nodeColors(topology), log, transport, recovered: records,
    nodeAddresses: new Set(topology.nodes.map((n) => n.address)),
    ...(process.env.PHYSALIA_TRACE ? { trace: (line: string) => console.error(line) } : {}),
    ...(intent === null ? {} : {
      formerIdentity: intent.former,
      onUnknownCell: (cell: string) => (rejoiner === null ? early.push(cell) : rejoiner.add(cell)),
    }),
    onFatal: (error) => {
      console.error(`node ${id}: stopping: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  });
  // The node has built its replicas, or packed the idle ones, from the records: let the
  // objects go (this function lives as long as the node, and so would they).
  records.clear();
  runtime.collectGarbage();
  node.start();
  if (intent !== null) {
    if (first === undefined) print(`node ${id}: resuming its rejoin in place of ${intent.former}: ${intent.cells.length} cells to go`);
    const clientTransport = await openClientLinks(topology, me.color, keys, { host: local.host, port: 0 });
    rejoiner = startRejoining({ directory: data, identity, keys, nodes: colorEndpoints(topology, me.color), transport: clientTransport, print, controlCell: controlCellOf(me.color) });
    for (const cell of early) rejoiner.add(cell);
  }
  source.set(node);
  print(`node ${identity}: ${me.transport ?? "udp"} ${local.host}:${local.port}, ${node.cellCount} cells recovered, metrics http://${status.local.host}:${status.local.port}/metrics`);

  const compaction = setInterval(() => {
    if (log.shouldCompact() && !log.compacting) void node.compact((entries) => log.compact(entries));
  }, 1_000);
  // The dashboard's history: a point every two seconds.
  node.metrics.sample(Date.now());
  const sampling = setInterval(() => node.metrics.sample(Date.now()), 2_000);
  let orphan: { stop(): void } | null = null;
  return await new Promise<number>((resolve) => {
    const shutdown = async () => {
      if (exiting) return;
      exiting = true;
      clearInterval(compaction);
      clearInterval(sampling);
      orphan?.stop();
      rejoiner?.stop();
      status.stop();
      await node.stop();
      lock.release();
      resolve(0);
    };
    process.once("SIGTERM", () => void shutdown());
    process.once("SIGINT", () => void shutdown());
    process.once("SIGHUP", () => void shutdown());
    if (flags["exit-with-parent"] === true) {
      orphan = watchParent(() => {
        print(`node ${id}: the process that started it is gone; stopping`);
        void shutdown();
      });
    }
  });
}

/** Cells one node lists on the dashboard (the page shows a colony's first few). */
const dashboardCellsMax = 50;

/** Open file descriptors, where /proc tells (Linux); null elsewhere. */
function openFds(): number | null {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return null;
  }
}

/** The topology's nodes of one color as the dashboard draws them, with where each one's status endpoint is by default. */
function colonyMembers(topology: Topology, color: string): ColonyMember[] {
  return topology.nodes.filter((n) => n.color === color).map((n) => {
    const at = endpointOf(n.address);
    // A node's status endpoint is on loopback on its own machine: reachable from here only when it is on this one.
    const statusUrl = isLoopbackHost(at.host) ? `http://127.0.0.1:${at.port + 1000}` : null;
    return { id: n.id, row: n.row, rack: n.rack, power: n.power, color: n.color, address: n.address, statusUrl };
  });
}

/**
 * What /metrics and /status serve while the node starts: the server is bound before the log
 * is opened (so a taken port fails the start before any file is created), and answers 503
 * until the node exists.
 */
class LateStatusSource implements StatusSource {
  private source: PhysaliaNode | null = null;

  set(source: PhysaliaNode): void {
    this.source = source;
  }

  /** The node's own series, then build and process figures. */
  metricsText(): string {
    const node = this.source;
    if (node === null) return "";
    return node.metricsText() + renderProcessMetrics(node.metricLabels, { version, runtime: runtime.name, runtimeVersion: runtime.version }, openFds());
  }

  /** What the dashboard shows of this node. */
  view(): NodeView | null {
    const node = this.source;
    if (node === null) return null;
    const status = node.status();
    const alive = new Set(status.peersAlive as string[]);
    const cells = node.cellNames(dashboardCellsMax).map((cell) => node.cellStatus(cell) as unknown as CellView);
    return {
      id: nodePart(node.id), identity: node.id, color: node.metricLabels.color,
      peers: [...(status.peersAlive as string[]), ...(status.peersDown as string[])].sort().map((peer) => ({ id: peer, alive: alive.has(peer) })),
      cellsHosted: status.cells as number, cellsLeading: status.leaders as number, cells, history: node.metrics.history,
    };
  }

  status(): Record<string, unknown> {
    return this.source?.status() ?? { starting: true };
  }

  cellStatus(cell: string): Record<string, unknown> | null {
    return this.source?.cellStatus(cell) ?? null;
  }

  ready(): boolean {
    return this.source !== null;
  }
}
