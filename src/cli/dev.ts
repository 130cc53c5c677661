// `physalia dev` (what `npm start` runs). Today it runs a local colony inside one process:
// the real cell core on the nodes of the embedded default topology, over the simulated
// network, with a sample workload and a few faults, and prints what happened. The colony
// of separate node processes on loopback arrives with the node (issue 4).

import localTopology from "../../topology/local.json" with { type: "json" };
import { defaultSimOptions, runSimulation } from "../sim/mod.ts";
import { parseFlags } from "./args.ts";

export const devUsage = `usage:
  physalia dev [--seed N]    run a local colony in one process with a sample workload`;

export function devCommand(args: string[], print: (line: string) => void = console.log): number {
  const flags = parseFlags(args, { seed: { type: "int", min: 0, max: 0xffff_ffff } });
  const seed = (flags.seed as number | undefined) ?? 7;
  const nodes = localTopology.nodes.length;
  print(`physalia dev: a colony of ${nodes} nodes from the embedded topology "${localTopology.name}", in one process`);
  print("  3 cells of 7 replicas; 4 clients per cell; nodes crash and the network drops and duplicates frames");
  const report = runSimulation({
    ...defaultSimOptions,
    seed,
    nodes,
    cells: 3,
    members: Math.min(7, nodes),
    clientsPerCell: 4,
    opsPerClient: 30,
    faults: new Set(["loss", "duplicate", "reorder", "crash"]),
    faultMs: 3_000,
  });
  const s = report.stats;
  print(`  ${s.operations} transactions (${s.unknownOutcomes} with unknown outcome after a client gave up), ${s.slotsApplied} log slots applied across replicas`);
  print(`  ${s.crashes} node crashes, ${s.framesDropped} of ${s.framesSent} frames dropped, ${s.framesDuplicated} duplicated`);
  print(`  every cell's history checked for linearizability: ${report.ok ? "all linearizable" : "FAILED"}`);
  for (const failure of report.failures) print(`  ${failure}`);
  print(`  replay this run: physalia sim --seed ${seed} --nodes ${nodes} --cells 3 --members ${Math.min(7, nodes)} --clients 4 --ops 30 --faults loss,duplicate,reorder,crash`);
  print("The multi-process colony on loopback (UDP, file log, metrics) is not built yet; see the README.");
  return report.ok ? 0 : 1;
}
