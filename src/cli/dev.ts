// `physalia dev` (what `npm start` runs): a local colony of separate node processes on
// loopback, from the embedded default topology, with a few cells and a sample workload.
// It keeps running until Ctrl-C, then stops the nodes and removes its data.
// `physalia dev --simulated` runs the same core in one process over the simulated network.

import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import localTopology from "../../topology/local.json" with { type: "json" };
import { PhysaliaClient } from "../client/client.ts";
import { resultToJson } from "../client/json.ts";
import type { Transaction } from "../core/transaction.ts";
import { utf8 } from "../core/value.ts";
import { runtime } from "../runtime/mod.ts";
import { defaultSimOptions, runSimulation } from "../sim/mod.ts";
import { UsageError, parseFlags } from "./args.ts";
import { CliError, colorEndpoints, readKeys, readTopology } from "./colony.ts";
import { nodeKeyFileName, writeKeyDirectory } from "./keys.ts";
import { openClientLinks } from "./links.ts";
import { nodePart } from "../wire/ids.ts";
import { selfCommand } from "./self.ts";

export const devUsage = `usage:
  physalia dev [--base-port P] [--duration S] [--data DIR] [--transport udp|datachannel|mixed]
      start a colony of ${localTopology.nodes.length} node processes on 127.0.0.1 (UDP ports P.., default 7101; metrics
      on P+1000..), create three cells, run a sample workload, and keep running until Ctrl-C
      (or for S seconds). Data goes to a temporary directory unless --data is given.
      --transport picks how nodes are reached: UDP (the default), WebRTC data channels, or
      every second node over data channels, so that a cell mixes the two kinds of link.
  physalia dev --simulated [--seed N]
      the same core in one process, over the simulated network, with faults`;

export async function devCommand(args: string[], print: (line: string) => void = console.log): Promise<number> {
  const flags = parseFlags(args, {
    "base-port": { type: "int", min: 1024, max: 60_000 },
    duration: { type: "int", min: 0, max: 86_400 },
    data: { type: "string" },
    transport: { type: "string" },
    simulated: { type: "bool" },
    seed: { type: "int", min: 0, max: 0xffff_ffff },
  });
  if (flags.simulated === true) return simulated((flags.seed as number | undefined) ?? 7, print);
  const basePort = (flags["base-port"] as number | undefined) ?? 7101;
  const links = (flags.transport as string | undefined) ?? "udp";
  if (links !== "udp" && links !== "datachannel" && links !== "mixed") throw new UsageError(`--transport must be udp, datachannel or mixed, not ${JSON.stringify(links)}`);
  const keep = flags.data !== undefined;
  const dir = keep ? (flags.data as string) : await mkdtemp(join(tmpdir(), "physalia-dev-"));
  await mkdir(dir, { recursive: true });

  // The embedded topology, on the chosen ports.
  const transportOf = (i: number) => (links === "mixed" ? (i % 2 === 1 ? "datachannel" : "udp") : links);
  const topology = { ...localTopology, nodes: localTopology.nodes.map((n, i) => ({ ...n, address: `127.0.0.1:${basePort + i}`, transport: transportOf(i) })) };
  const topologyPath = join(dir, "topology.json");
  const keysDir = join(dir, "keys");
  await writeFile(topologyPath, JSON.stringify(topology, null, 1));
  // Each holder gets only its own file: nodes their color's, the workload the control key.
  await writeKeyDirectory(keysDir, topology.colors);
  const controlKeys = join(keysDir, "control.json");

  print(`physalia dev: starting ${topology.nodes.length} nodes (${links}) from the embedded topology "${topology.name}" on ${runtime.name} ${runtime.version} (data in ${dir})`);
  const children = topology.nodes.map((node, i) =>
    runtime.spawn([...selfCommand(), "node", "--topology", topologyPath, "--id", node.id, "--data", join(dir, node.id), "--keys", join(keysDir, nodeKeyFileName(node.color)), "--metrics", `127.0.0.1:${basePort + 1000 + i}`], {
      stdoutPath: join(dir, `${node.id}.log`),
      stderrPath: join(dir, `${node.id}.err`),
    }),
  );
  let stopping = false;
  const stop = async (code: number): Promise<number> => {
    if (stopping) return code;
    stopping = true;
    for (const child of children) child.kill("SIGTERM");
    await Promise.all(children.map((c) => c.exited));
    if (!keep) await rm(dir, { recursive: true, force: true });
    print("physalia dev: stopped");
    return code;
  };
  try {
    await waitForStatus(topology.nodes.map((_, i) => basePort + 1000 + i), children);
    const code = await workload(topologyPath, controlKeys, print);
    if (code !== 0) return await stop(code);
    print("");
    print("The colony is running. Metrics and status:");
    for (let i = 0; i < topology.nodes.length; i++) print(`  ${topology.nodes[i]?.id}: http://127.0.0.1:${basePort + 1000 + i}/metrics  /status`);
    print(`Try: ${selfCommand().join(" ")} ctl --topology ${topologyPath} --keys ${join(keysDir, "client.json")} get volume-1 primary`);
    print(`     (create, add-member and remove-member need --keys ${controlKeys})`);
    print((flags.duration as number | undefined) ? `Stopping in ${flags.duration} s.` : "Ctrl-C to stop.");
    const exitedEarly = Promise.race(children.map((c, i) => c.exited.then((code) => ({ i, code }))));
    const signal = new Promise<string>((resolve) => {
      process.once("SIGINT", () => resolve("SIGINT"));
      process.once("SIGTERM", () => resolve("SIGTERM"));
      const seconds = flags.duration as number | undefined;
      if (seconds) setTimeout(() => resolve("duration"), seconds * 1000);
    });
    const first = await Promise.race([signal, exitedEarly]);
    if (typeof first !== "string") {
      print(`physalia dev: node ${topology.nodes[first.i]?.id} exited with status ${first.code}; see ${dir}`);
      return await stop(1);
    }
    return await stop(0);
  } catch (error) {
    print(`physalia dev: ${error instanceof Error ? error.message : String(error)}`);
    return await stop(1);
  }
}

async function waitForStatus(ports: readonly number[], children: readonly { exitCode: number | null }[]): Promise<void> {
  const deadline = performance.now() + 15_000;
  for (const port of ports) {
    for (;;) {
      if (children.some((c) => c.exitCode !== null)) throw new CliError("a node exited during start-up");
      try {
        const response = await fetch(`http://127.0.0.1:${port}/status`);
        if (response.ok) break;
      } catch {
        // Not listening yet.
      }
      if (performance.now() > deadline) throw new CliError(`the node with metrics port ${port} did not start within 15 s`);
      await runtime.sleep(50);
    }
  }
}

async function workload(topologyPath: string, keysPath: string, print: (line: string) => void): Promise<number> {
  const topology = await readTopology(topologyPath);
  const { keys } = await readKeys(keysPath, ["control"]);
  const color = topology.colors[0] as string;
  const nodes = colorEndpoints(topology, color);
  const transport = await openClientLinks(topology, color, keys, { host: "127.0.0.1", port: 0 });
  const client = new PhysaliaClient({ id: `dev-${process.pid}`, nodes, keys, transport });
  const show = async (cell: string, what: string, tx: Transaction) => {
    const result = await client.transact(cell, tx);
    print(`  ${cell}: ${what.padEnd(44)} -> ${JSON.stringify(resultToJson(tx, result))}`);
  };
  try {
    for (let v = 1; v <= 3; v++) {
      const cell = `volume-${v}`;
      const created = await client.create(cell);
      print(`${created.status === "created" ? "created" : "found existing"} ${cell} on ${created.members.map(nodePart).join(", ")}`);
      await show(cell, `put primary=server-${v}a, replica=server-${v}b`, { reads: [], conditions: [], writes: [{ key: "primary", op: "put", value: utf8(`server-${v}a`) }, { key: "replica", op: "put", value: utf8(`server-${v}b`) }] });
      await show(cell, "increment epoch", { reads: [], conditions: [], writes: [{ key: "epoch", op: "increment", by: 1n }] });
      await show(cell, "fail over if epoch is still 1", {
        reads: ["primary"], conditions: [{ key: "epoch", test: "equals", value: 1n }],
        writes: [{ key: "primary", op: "put", value: utf8(`server-${v}b`) }, { key: "replica", op: "put", value: utf8(`server-${v}c`) }, { key: "epoch", op: "increment", by: 1n }],
      });
      await show(cell, "the same fail-over again (epoch moved on)", {
        reads: [], conditions: [{ key: "epoch", test: "equals", value: 1n }], writes: [{ key: "primary", op: "put", value: utf8("nobody") }],
      });
      await show(cell, "scan", { reads: [], conditions: [], writes: [], scan: { start: "", limit: 10 } });
    }
    return 0;
  } finally {
    await client.end();
  }
}

function simulated(seed: number, print: (line: string) => void): number {
  const nodes = localTopology.nodes.length;
  print(`physalia dev --simulated: ${nodes} nodes from the embedded topology, in one process over the simulated network`);
  const report = runSimulation({
    ...defaultSimOptions, seed, nodes, cells: 3, members: Math.min(7, nodes), clientsPerCell: 4, opsPerClient: 30,
    faults: new Set(["loss", "duplicate", "reorder", "crash"]), faultMs: 3_000,
  });
  const s = report.stats;
  print(`  ${s.operations} transactions (${s.unknownOutcomes} with unknown outcome), ${s.slotsApplied} slots applied across replicas`);
  print(`  ${s.crashes} node crashes, ${s.framesDropped} of ${s.framesSent} frames dropped, ${s.framesDuplicated} duplicated`);
  print(`  every cell's history linearizable: ${report.ok ? "yes" : "NO"}`);
  for (const failure of report.failures) print(`  ${failure}`);
  return report.ok ? 0 : 1;
}
