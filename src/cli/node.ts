// `physalia node`: one node process. It reads its topology, keys and log, recovers its
// replicas, listens on its UDP address, serves /metrics and /status on loopback, and runs
// until SIGTERM or SIGINT.

import { existsSync, rmSync } from "node:fs";
import { PhysaliaClient } from "../client/client.ts";
import { PhysaliaNode } from "../node/node.ts";
import type { Endpoint, Transport } from "../transport/transport.ts";
import type { KeySet } from "../wire/keyring.ts";
import { openLog, LogOpenError, moveLogAside } from "../storage/mod.ts";
import { errorText } from "../runtime/mod.ts";
import { type StatusServer, type StatusSource, serveStatus } from "../transport/http.ts";
import { UsageError, parseFlags } from "./args.ts";
import { CliError, colorEndpoints, endpointOf, nodeColors, readKeys, readTopology } from "./colony.ts";
import { openClientLinks, openNodeLinks } from "./links.ts";
import { lockDirectory } from "./lock.ts";

export const nodeUsage = `usage: physalia node --topology FILE --id NODE --data DIR --keys FILE [--metrics HOST:PORT]
  --topology FILE    the colony's topology (JSON; see docs/placement.md)
  --id NODE          this node's id in the topology; it listens on that node's address (UDP, or data-channel
                     signalling on TCP at the same port when it or a peer has "transport": "datachannel")
  --data DIR         where the node keeps its log (created if missing)
  --keys FILE        the node key file of this node's color (physalia keys generate writes node-<color>.json)
  --metrics H:P      where /metrics and /status are served (default 127.0.0.1:<udp port + 1000>)`;

export async function nodeCommand(args: string[], print: (line: string) => void = console.log): Promise<number> {
  const flags = parseFlags(args, {
    topology: { type: "string" },
    id: { type: "string" },
    data: { type: "string" },
    keys: { type: "string" },
    metrics: { type: "string" },
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
  // Nodes of different colors never talk to each other.
  const peers = colorEndpoints(topology, me.color);
  peers.delete(id);

  // The lock comes first: a second process on this directory is refused for that reason.
  // Then everything that can fail for reasons outside the directory (an address in use, a
  // port without permission) is tried before the log is touched, so a node that cannot
  // start leaves no half-created log behind, and no directory it created.
  const existed = existsSync(data);
  let lock = lockDirectory(data);
  const abandon = () => {
    lock.release();
    if (!existed) rmSync(data, { recursive: true, force: true });
  };
  let transport: Transport;
  try {
    transport = await openNodeLinks(topology, me, keys);
  } catch (error) {
    abandon();
    throw error;
  }
  const source = new LateStatusSource();
  let status: StatusServer;
  try {
    status = await serveStatus(metricsAt, source);
  } catch (error) {
    transport.close();
    abandon();
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
  // Cells this node must replace itself in, when its log lost acknowledged state.
  let rejoin: string[] | null = null;
  const { damage, torn } = opened;
  if (damage.length === 0 && torn !== null) {
    // Bytes no completed sync covered: nothing in them was acknowledged.
    print(`node ${id}: discarded a torn tail at segment ${torn.segment} offset ${torn.offset} (${torn.lostBytes} bytes, never acknowledged)`);
  }
  const first = damage[0];
  if (first !== undefined) {
    // Records that were synced, and so possibly acknowledged, are gone. A node must never
    // vote with state it does not have: it keeps the damaged log aside, starts empty (so it
    // votes in no cell), and replaces itself in each of its cells: removed, then added back
    // as a new, empty replica that learns the cell from its peers.
    rejoin = [...opened.records.keys()];
    lock.release();
    let aside: string;
    try {
      aside = await moveLogAside(data);
    } catch (error) {
      unbind();
      throw new CliError(errorText(error));
    }
    print(
      `node ${id}: its log was damaged in ${damage.length} place(s), first at segment ${first.segment} offset ${first.offset} (${first.reason}: ${first.detail}); ` +
      `moved it to ${aside} and starting empty; replacing itself in ${rejoin.length} known cells, and in any other cell a peer names`,
    );
    try {
      lock = lockDirectory(data);
      opened = await openLog(data);
    } catch (error) {
      unbind();
      throw error instanceof LogOpenError ? new CliError(error.message) : error;
    }
  }
  const { log, records } = opened;
  if (log === null) {
    unbind();
    lock.release();
    throw new CliError(`Cannot open log: ${data} is damaged although it was just created: ${opened.damage[0]?.detail ?? ""}`);
  }

  let exiting = false;
  // Set once the node runs; a peer's message can arrive before that and is then learnt later.
  let replacer: { add(cell: string): void; stop(): void } | null = null;
  const early: string[] = [];
  const node = new PhysaliaNode({
    id, peers, keys, nodeColors: nodeColors(topology), log, transport, recovered: records,
    ...(process.env.PHYSALIA_TRACE ? { trace: (line: string) => console.error(line) } : {}),
    ...(rejoin === null ? {} : { onUnknownCell: (cell: string) => (replacer === null ? early.push(cell) : replacer.add(cell)) }),
    onFatal: (error) => {
      console.error(`node ${id}: stopping: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  });
  node.start();
  if (rejoin !== null) {
    replacer = startReplacing({ id, keys, nodes: colorEndpoints(topology, me.color), transport: await openClientLinks(topology, me.color, keys, { host: local.host, port: 0 }), cells: rejoin, print });
    for (const cell of early) replacer.add(cell);
  }
  source.set(node);
  print(`node ${id}: ${me.transport ?? "udp"} ${local.host}:${local.port}, ${node.cellCount} cells recovered, metrics http://${status.local.host}:${status.local.port}/metrics`);

  const compaction = setInterval(() => {
    if (log.shouldCompact() && !log.compacting) void node.compact((entries) => log.compact(entries));
  }, 1_000);
  return await new Promise<number>((resolve) => {
    const shutdown = async () => {
      if (exiting) return;
      exiting = true;
      clearInterval(compaction);
      replacer?.stop();
      status.stop();
      await node.stop();
      lock.release();
      resolve(0);
    };
    process.once("SIGTERM", () => void shutdown());
    process.once("SIGINT", () => void shutdown());
  });
}

interface ReplaceOptions {
  readonly id: string;
  readonly transport: Transport;
  /** The node's own key file: replacing itself is a membership change, under its control key. */
  readonly keys: KeySet;
  readonly nodes: ReadonlyMap<string, Endpoint>;
  readonly cells: readonly string[];
  readonly print: (line: string) => void;
}

/**
 * Replaces this node in each cell it is told of, one cell at a time: remove it (a quorum of
 * the other members decides), drive the log past the old membership (`join` does), host an
 * empty replica, and add it back. Until it is added back the node has no replica of the
 * cell, so it cannot vote in it.
 */
function startReplacing(options: ReplaceOptions): { add(cell: string): void; stop(): void } {
  const { id, print } = options;
  const client = new PhysaliaClient({ id: `${id}.rejoin`, nodes: options.nodes, keys: options.keys, transport: options.transport, deadlineMs: 30_000 });
  const seen = new Set<string>();
  const queue: string[] = [];
  let running = false;
  let stopped = false;
  const replaceOne = async (cell: string) => {
    const removed = await client.configure(cell, { kind: "removeMember", node: id });
    if (removed.status === "rejected" && removed.reason === "configInvalid") return "not a member"; // Nothing to replace.
    if (removed.status !== "configured") throw new Error(`removal refused: ${"detail" in removed ? removed.detail : removed.status}`);
    await client.join(cell, id);
    const added = await client.configure(cell, { kind: "addMember", node: id });
    if (added.status !== "configured") throw new Error(`addition refused: ${"detail" in added ? added.detail : added.status}`);
    return "replaced";
  };
  const drain = async () => {
    if (running) return;
    running = true;
    while (queue.length > 0 && !stopped) {
      const cell = queue.shift() as string;
      try {
        const outcome = await replaceOne(cell);
        print(outcome === "replaced" ? `node ${id}: replaced itself in cell ${cell}` : `node ${id}: not a member of cell ${cell}: nothing to replace`);
      } catch (error) {
        print(`node ${id}: could not replace itself in cell ${cell} (${error instanceof Error ? error.message : String(error)}); retrying later`);
        seen.delete(cell);
        setTimeout(() => add(cell), 5_000);
      }
    }
    running = false;
  };
  const add = (cell: string) => {
    if (stopped || seen.has(cell)) return;
    seen.add(cell);
    queue.push(cell);
    void drain();
  };
  for (const cell of options.cells) add(cell);
  return {
    add,
    stop() {
      stopped = true;
      client.close();
    },
  };
}

/**
 * What /metrics and /status serve while the node starts: the server is bound before the log
 * is opened (so a taken port fails the start before any file is created), and answers 503
 * until the node exists.
 */
class LateStatusSource implements StatusSource {
  private source: StatusSource | null = null;

  set(source: StatusSource): void {
    this.source = source;
  }

  metricsText(): string {
    return this.source?.metricsText() ?? "";
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
