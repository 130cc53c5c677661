// `physalia control`: one control-plane process for one color. Run two or more: one is
// active (it holds a lease in the color's control cell), the others stand by and take over
// when it stops renewing.

import { statSync } from "node:fs";
import { PhysaliaClient } from "../client/client.ts";
import { GossipView } from "../control/gossipview.ts";
import { ProbeView } from "../control/probe.ts";
import { ControlPlane, controlCellOf } from "../control/service.ts";
import { UsageError, parseFlags } from "./args.ts";
import { CliError, colorEndpoints, readKeys, readTopology } from "./colony.ts";
import { openClientLinks } from "./links.ts";
import { watchParent } from "./orphan.ts";
import { loadTopology } from "../control/topology/load.ts";
import { isTopologyError } from "../control/topology/types.ts";

function modifiedMs(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

export const controlUsage = `usage: physalia control --topology FILE --keys FILE [--color C] [--id NAME] [--grace MS] [--size N] [--steps N] [--in-flight N] [--view gossip|probe] [--exit-with-parent]
  --topology FILE   the colony's topology; clients (for placement near them) come from it
  --keys FILE       the control key file (control.json)
  --color C         the color this process serves (default: the topology's first); one control plane per color
  --id NAME         this process's name, the holder of the control lease (default control-<pid>)
  --grace MS        a node down this long is replaced in its cells (default 10000)
  --size N          replicas of a new cell (default 7, fewer if the color has fewer nodes)
  --steps N         membership changes started per pass at most, across all cells (default 8): the repair rate
  --in-flight N     membership changes under way at once at most, across passes (default: --steps);
                    a change waits for its new member to catch up, so this bounds the copying at once
  --view V          where node health and cells' members come from: gossip (default: three nodes'
                    discovery peer tables and batched lookups a pass) or probe (a hello to every
                    node and a describe of each cell it reads, a pass)
  --exit-with-parent stop when the process that started this one ends (physalia dev starts it so)
it serves creation requests (physalia ctl create CELL --client ID), replaces members of nodes
that stay down, and moves cells after their clients (physalia ctl attach CELL CLIENT, or a
rewritten topology file in which clients moved: read on SIGHUP and checked every 5 s)`;

export async function controlCommand(args: string[], print: (line: string) => void = console.log): Promise<number> {
  const flags = parseFlags(args, {
    topology: { type: "string" },
    keys: { type: "string" },
    color: { type: "string" },
    id: { type: "string" },
    grace: { type: "int", min: 100, max: 24 * 3_600_000 },
    size: { type: "int", min: 1, max: 9 },
    steps: { type: "int", min: 1, max: 4096 },
    "in-flight": { type: "int", min: 1, max: 65_536 },
    view: { type: "string" },
    "exit-with-parent": { type: "bool" },
  });
  const viewName = (flags.view as string | undefined) ?? "gossip";
  if (viewName !== "gossip" && viewName !== "probe") throw new UsageError(`--view is gossip or probe, not ${JSON.stringify(viewName)}`);
  const topology = await readTopology(flags.topology as string | undefined);
  const keysPath = flags.keys as string | undefined;
  const { keys } = await readKeys(keysPath, ["control"]);
  const color = (flags.color as string | undefined) ?? (topology.colors[0] as string);
  if (!topology.colors.includes(color)) throw new UsageError(`--color ${color} is not a color of the topology (${topology.colors.join(", ")})`);
  const nodes = colorEndpoints(topology, color);
  if (nodes.size === 0) throw new CliError(`Cannot run the control plane: color ${color} has no nodes`);
  const id = (flags.id as string | undefined) ?? `control-${process.pid}`;
  const transport = await openClientLinks(topology, color, keys);
  const client = new PhysaliaClient({ id, nodes, keys, transport, deadlineMs: 10_000 });
  const viewOptions = { client, nodes: [...nodes.keys()], controlCell: controlCellOf(color) };
  const view = viewName === "gossip" ? new GossipView(viewOptions) : new ProbeView(viewOptions);
  const plane = new ControlPlane({
    id, topology, color, client, view, log: print,
    ...(flags.grace === undefined ? {} : { graceMs: flags.grace as number }),
    ...(flags.size === undefined ? {} : { size: flags.size as number }),
    ...(flags.steps === undefined ? {} : { stepsPerPassMax: flags.steps as number }),
    ...(flags["in-flight"] === undefined ? {} : { stepsInFlightMax: flags["in-flight"] as number }),
  });
  try {
    await plane.ensureControlCell();
  } catch (error) {
    client.close();
    throw new CliError(`Cannot reach the control cell ${controlCellOf(color)}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const { stepsPerPass, stepsInFlight } = plane.pacing;
  print(`control ${id}: serving color ${color} (${nodes.size} nodes, the ${viewName} view, at most ${stepsPerPass} changes started a pass and ${stepsInFlight} under way); standing by until it holds the lease in ${controlCellOf(color)}`);
  const running = plane.run();
  // Datacenter automation rewrites the topology file (and may send SIGHUP): clients that moved
  // take their cells with them. The file is also checked every 5 s.
  const topologyPath = flags.topology as string;
  let seen = modifiedMs(topologyPath);
  const reload = async (why: string) => {
    seen = modifiedMs(topologyPath);
    const next = await loadTopology(topologyPath);
    if (isTopologyError(next)) return print(`control ${id}: the new topology (${why}) is not used: ${next.message}`);
    const outcome = plane.updateTopology(next);
    print(outcome.ok ? `control ${id}: took the new topology (${why}): ${outcome.moved} client(s) moved` : `control ${id}: the new topology (${why}) is not used: ${outcome.reason}`);
  };
  const onHangup = () => void reload("SIGHUP");
  process.on("SIGHUP", onHangup);
  const watch = setInterval(() => {
    if (modifiedMs(topologyPath) !== seen) void reload("the file changed");
  }, 5_000);
  let orphan: { stop(): void } | null = null;
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
    if (flags["exit-with-parent"] === true) {
      orphan = watchParent(() => {
        print(`control ${id}: the process that started it ended; stopping`);
        resolve();
      });
    }
  });
  (orphan as { stop(): void } | null)?.stop();
  clearInterval(watch);
  process.removeListener("SIGHUP", onHangup);
  plane.stop();
  // A pass in flight ends within the client's deadline; an orphan (whose nodes are going
  // too) does not wait for it longer than a few seconds.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = Promise.all([running, client.end()]).then(() => true);
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), orphan === null ? 15_000 : 2_000);
  });
  const inTime = await Promise.race([settled, late]);
  clearTimeout(timer);
  if (!inTime) {
    client.close();
    // What is left (a pass waiting on nodes that are gone) must not keep the process up.
    process.exit(0);
  }
  return 0;
}
