// `physalia sim`: run the simworld for one seed (replay) or many (search for failures).

import { type SimOptions, type SimReport, SimOptionsError, bugKinds, defaultSimOptions, faultKinds, parseFaults, runSimulation } from "../sim/mod.ts";
import { type FlagValues, UsageError, parseFlags } from "./args.ts";

export const simUsage = `usage:
  physalia sim --seed N [options]        replay one seed and print its report
  physalia sim --seeds K [--first S]     run K seeds from S (default 1); one JSON line at the end
options:
  --nodes N      nodes in the colony (default ${defaultSimOptions.nodes})
  --cells M      cells (default ${defaultSimOptions.cells})
  --members R    replicas per cell (default: 3, 5 or 7, chosen per seed)
  --clients C    clients per cell (default ${defaultSimOptions.clientsPerCell})
  --churn K      short-lived clients per cell, in bursts (default: chosen per seed with the churn fault)
  --ops O        operations per client (default ${defaultSimOptions.opsPerClient})
  --faults F     all | none | comma list of: ${faultKinds.join(", ")} (default all)
  --bug B        run a deliberately broken driver: ${bugKinds.join(", ")}
  --verbose      with --seeds, print every failing seed's failures
  --trace CELL   with --seed, print every step of one cell to stderr`;

const specs = {
  seed: { type: "int", min: 0, max: 0xffff_ffff },
  seeds: { type: "int", min: 1, max: 10_000_000 },
  first: { type: "int", min: 0, max: 0xffff_ffff },
  nodes: { type: "int", min: 1, max: 64 },
  cells: { type: "int", min: 1, max: 1000 },
  members: { type: "int", min: 1, max: 9 },
  clients: { type: "int", min: 1, max: 50 },
  churn: { type: "int", min: 0, max: 10_000 },
  ops: { type: "int", min: 0, max: 10_000 },
  faults: { type: "string" },
  bug: { type: "string" },
  verbose: { type: "bool" },
  trace: { type: "string" },
} as const;

function optionsFrom(flags: FlagValues, seed: number): SimOptions {
  const bug = flags.bug as string | undefined;
  if (bug !== undefined && !(bugKinds as readonly string[]).includes(bug)) {
    throw new UsageError(`unknown bug ${JSON.stringify(bug)}; choose from ${bugKinds.join(", ")}`);
  }
  let faults: SimOptions["faults"];
  try {
    faults = parseFaults((flags.faults as string | undefined) ?? "all");
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const options: SimOptions = {
    ...defaultSimOptions,
    seed,
    faults,
    nodes: (flags.nodes as number | undefined) ?? defaultSimOptions.nodes,
    cells: (flags.cells as number | undefined) ?? defaultSimOptions.cells,
    clientsPerCell: (flags.clients as number | undefined) ?? defaultSimOptions.clientsPerCell,
    opsPerClient: (flags.ops as number | undefined) ?? defaultSimOptions.opsPerClient,
    ...(flags.members === undefined ? {} : { members: flags.members as number }),
    ...(flags.churn === undefined ? {} : { churnClientsPerCell: flags.churn as number }),
    ...(bug === undefined ? {} : { bug: bug as SimOptions["bug"] & string }),
    ...(flags.trace === undefined ? {} : { trace: { cell: flags.trace as string, print: (line: string) => console.error(line) } }),
  };
  return options;
}

/** The command that replays one seed with the same options. */
export function replayCommand(args: readonly string[], seed: number): string {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const name = arg.replace(/^--/, "").split("=")[0];
    if (name === "seeds" || name === "first" || name === "verbose") {
      if (!arg.includes("=") && name !== "verbose") i++;
      continue;
    }
    kept.push(arg);
  }
  return ["physalia sim --seed", String(seed), ...kept].join(" ");
}

export function simCommand(args: string[], print: (line: string) => void = console.log): number {
  const flags = parseFlags(args, specs);
  if (flags.seed !== undefined && flags.seeds !== undefined) throw new UsageError("give --seed or --seeds, not both");
  if (flags.seed === undefined && flags.seeds === undefined) throw new UsageError("give --seed N or --seeds K");
  try {
    if (flags.seed !== undefined) {
      const report = runSimulation(optionsFrom(flags, flags.seed as number));
      print(JSON.stringify(report, null, 2));
      return report.ok ? 0 : 1;
    }
    const count = flags.seeds as number;
    const first = (flags.first as number | undefined) ?? 1;
    const started = performance.now();
    const failing: number[] = [];
    const totals: Record<string, number> = {};
    for (let seed = first; seed < first + count; seed++) {
      const report: SimReport = runSimulation(optionsFrom(flags, seed));
      for (const [name, value] of Object.entries(report.stats)) if (typeof value === "number") totals[name] = (totals[name] ?? 0) + value;
      if (!report.ok) {
        failing.push(seed);
        print(`seed ${seed} failed: ${report.failures[0] ?? "?"}`);
        if (flags.verbose === true) for (const failure of report.failures.slice(1)) print(`  ${failure}`);
        print(`  replay: ${replayCommand(args, seed)}`);
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const faults = [...optionsFrom(flags, first).faults];
    print(JSON.stringify({
      seeds: count, failures: failing.length, failingSeeds: failing.slice(0, 20), seconds: round(seconds), seedsPerSecond: round(count / seconds),
      faults, operations: totals.operations, unknownOutcomes: totals.unknownOutcomes, crashes: totals.crashes, partitions: totals.partitions,
      membershipChanges: totals.membershipChanges, framesSent: totals.framesSent, framesDropped: totals.framesDropped,
      framesDuplicated: totals.framesDuplicated, framesCorrupted: totals.framesCorrupted, slotsApplied: totals.slotsApplied,
      inconclusiveChecks: totals.inconclusiveChecks,
    }));
    return failing.length === 0 ? 0 : 1;
  } catch (error) {
    if (error instanceof SimOptionsError) throw new UsageError(error.message);
    throw error;
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
