// `physalia control`: one control-plane process for one color. Run two or more: one is
// active (it holds a lease in the color's control cell), the others stand by and take over
// when it stops renewing.

import { PhysaliaClient } from "../client/client.ts";
import { ProbeView } from "../control/probe.ts";
import { ControlPlane, controlCellOf } from "../control/service.ts";
import { UsageError, parseFlags } from "./args.ts";
import { CliError, colorEndpoints, readKeys, readTopology } from "./colony.ts";
import { openClientLinks } from "./links.ts";

export const controlUsage = `usage: physalia control --topology FILE --keys FILE [--color C] [--id NAME] [--grace MS] [--size N]
  --topology FILE   the colony's topology; clients (for placement near them) come from it
  --keys FILE       the control key file (control.json)
  --color C         the color this process serves (default: the topology's first); one control plane per color
  --id NAME         this process's name, the holder of the control lease (default control-<pid>)
  --grace MS        a node down this long is replaced in its cells (default 10000)
  --size N          replicas of a new cell (default 7, fewer if the color has fewer nodes)
it serves creation requests (physalia ctl create CELL --client ID), replaces members of nodes
that stay down, and moves cells after their clients (physalia ctl attach CELL CLIENT)`;

export async function controlCommand(args: string[], print: (line: string) => void = console.log): Promise<number> {
  const flags = parseFlags(args, {
    topology: { type: "string" },
    keys: { type: "string" },
    color: { type: "string" },
    id: { type: "string" },
    grace: { type: "int", min: 100, max: 24 * 3_600_000 },
    size: { type: "int", min: 1, max: 9 },
  });
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
  const view = new ProbeView({ client, nodes: [...nodes.keys()], controlCell: controlCellOf(color) });
  const plane = new ControlPlane({
    id, topology, color, client, view, log: print,
    ...(flags.grace === undefined ? {} : { graceMs: flags.grace as number }),
    ...(flags.size === undefined ? {} : { size: flags.size as number }),
  });
  try {
    await plane.ensureControlCell();
  } catch (error) {
    client.close();
    throw new CliError(`Cannot reach the control cell ${controlCellOf(color)}: ${error instanceof Error ? error.message : String(error)}`);
  }
  print(`control ${id}: serving color ${color} (${nodes.size} nodes); standing by until it holds the lease in ${controlCellOf(color)}`);
  const running = plane.run();
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  plane.stop();
  await running;
  await client.end();
  return 0;
}
