// `physalia node`: one node process. It reads its topology, keys and log, recovers its
// replicas, listens on its UDP address, serves /metrics and /status on loopback, and runs
// until SIGTERM or SIGINT.

import { PhysaliaNode } from "../node/node.ts";
import { openLog, LogOpenError } from "../storage/mod.ts";
import { serveStatus } from "../transport/http.ts";
import { openUdp } from "../transport/udp.ts";
import { UsageError, parseFlags } from "./args.ts";
import { CliError, colorEndpoints, endpointOf, readKeys, readTopology } from "./colony.ts";
import { lockDirectory } from "./lock.ts";

export const nodeUsage = `usage: physalia node --topology FILE --id NODE --data DIR --keys FILE [--metrics HOST:PORT]
  --topology FILE    the colony's topology (JSON; see docs/placement.md)
  --id NODE          this node's id in the topology; it listens on that node's address (UDP)
  --data DIR         where the node keeps its log (created if missing)
  --keys FILE        the frame keys (JSON: {"version":1,"current":ID,"keys":[{"id":ID,"secret":"<hex>"}]})
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
  const keyring = await readKeys(flags.keys as string | undefined);
  const local = endpointOf(me.address);
  const metricsAt = flags.metrics === undefined ? { host: "127.0.0.1", port: local.port + 1000 } : endpointOf(flags.metrics as string);
  // Nodes of different colors never talk to each other.
  const peers = colorEndpoints(topology, me.color);
  peers.delete(id);

  const lock = lockDirectory(data);
  let opened;
  try {
    opened = await openLog(data);
  } catch (error) {
    lock.release();
    if (error instanceof LogOpenError) throw new CliError(error.message);
    throw error;
  }
  const { log, records, damage } = opened;
  if (damage !== null) {
    if (damage.reason !== "torn") {
      await log.close();
      lock.release();
      throw new CliError(
        `Cannot start node ${id}: its log in ${data} is damaged at segment ${damage.segment} offset ${damage.offset} ` +
        `(${damage.reason}: ${damage.detail}); ${damage.lostBytes} bytes after it are lost. A node must not vote with ` +
        `state it no longer has: remove it from its cells (physalia ctl remove-member), move ${data} aside, start it ` +
        `empty, and add it back (physalia ctl add-member).`,
      );
    }
    // A write cut short by a crash: it was never synced, so nothing in it was acknowledged.
    print(`node ${id}: discarded a torn write at the end of segment ${damage.segment} (${damage.lostBytes} bytes, never acknowledged)`);
  }

  const transport = await openUdp(local).catch((error: unknown) => {
    void log.close();
    lock.release();
    throw new CliError(error instanceof Error ? error.message : String(error));
  });
  let exiting = false;
  const node = new PhysaliaNode({
    id, peers, keyring, log, transport, recovered: records,
    ...(process.env.PHYSALIA_TRACE ? { trace: (line: string) => console.error(line) } : {}),
    onFatal: (error) => {
      console.error(`node ${id}: stopping: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  });
  node.start();
  let status;
  try {
    status = serveStatus(metricsAt, node);
  } catch (error) {
    await node.stop();
    throw new CliError(`Cannot serve metrics on ${metricsAt.host}:${metricsAt.port}: ${error instanceof Error ? error.message : String(error)}`);
  }
  print(`node ${id}: udp ${local.host}:${transport.local.port}, ${node.cellCount} cells recovered, metrics http://${status.local.host}:${status.local.port}/metrics`);

  const compaction = setInterval(() => {
    if (log.shouldCompact() && !log.compacting) void node.compact((entries) => log.compact(entries));
  }, 1_000);
  return await new Promise<number>((resolve) => {
    const shutdown = async () => {
      if (exiting) return;
      exiting = true;
      clearInterval(compaction);
      status.stop();
      await node.stop();
      lock.release();
      resolve(0);
    };
    process.once("SIGTERM", () => void shutdown());
    process.once("SIGINT", () => void shutdown());
  });
}
