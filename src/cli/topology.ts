// `physalia topology ...`: generate synthetic datacenters, validate topology files, and
// show where a cell would be placed. Output is JSON on stdout; errors are one line on stderr.

import { controlLimits } from "../control/limits.ts";
import { UsageError, parseCommandLine, quote } from "./args.ts";
import { CliError, InputError } from "./colony.ts";
import { Placer, PlacementError } from "../control/placement/mod.ts";
import { seedMax } from "../random.ts";
import { loadTopology } from "../control/topology/load.ts";
import { type Addressing, formatTopology, generateTopology, type Topology, TopologyError } from "../control/topology/mod.ts";

export const topologyUsage = `usage:
  physalia topology generate --rows R --racks K --nodes N --power P --colors C --seed S
                             [--clients M] [--capacity X] [--addresses datacenter|loopback]
                             [--port PORT] [--name NAME]
      Print a synthetic topology: R rows of K racks of N nodes, P power domains striped
      across racks, C colors spread evenly, M clients on random racks (seeded by S).
  physalia topology validate FILE
      Check a topology file; print a summary, or the first problem on stderr (exit 1).
  physalia topology place FILE --row ROW [--primary-row ROW] [--replica-row ROW]
                          [--color COLOR] [--size N]
      Print where a new cell for clients in ROW would go on an empty colony.`;

interface Flags {
  readonly positional: string[];
  readonly values: Map<string, string>;
}

/** The shared parser, every flag taking text; the subcommands check their own values. */
function parseFlags(args: readonly string[], known: readonly string[]): Flags {
  const { flags, positional } = parseCommandLine(args, Object.fromEntries(known.map((name) => [name, { type: "string" as const }])));
  return { positional, values: new Map(Object.entries(flags).map(([name, value]) => [name, String(value)])) };
}

function integerFlag(flags: Flags, name: string, min: number, max: number, fallback?: number): number {
  const text = flags.values.get(name);
  if (text === undefined) {
    if (fallback === undefined) throw new UsageError(`flag --${name} is required`);
    return fallback;
  }
  if (!/^(0|[1-9][0-9]*)$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`flag --${name} must be an integer from ${min} to ${max}, not "${text}"`);
  }
  return Number(text);
}

function generate(args: readonly string[]): Topology | TopologyError {
  const flags = parseFlags(args, ["rows", "racks", "nodes", "power", "colors", "seed", "clients", "capacity", "addresses", "port", "name"]);
  if (flags.positional.length > 0) throw new UsageError(`unexpected argument "${flags.positional[0]}"`);
  const addressing = flags.values.get("addresses") ?? "datacenter";
  if (addressing !== "datacenter" && addressing !== "loopback") throw new UsageError('flag --addresses must be "datacenter" or "loopback"');
  const name = flags.values.get("name");
  return generateTopology({
    rows: integerFlag(flags, "rows", 1, controlLimits.generatorRowsMax),
    racksPerRow: integerFlag(flags, "racks", 1, controlLimits.generatorRacksPerRowMax),
    nodesPerRack: integerFlag(flags, "nodes", 1, controlLimits.generatorNodesPerRackMax),
    powerDomains: integerFlag(flags, "power", 1, controlLimits.powerDomainsMax),
    colors: integerFlag(flags, "colors", 1, controlLimits.colorsMax),
    seed: integerFlag(flags, "seed", 0, seedMax),
    clients: integerFlag(flags, "clients", 0, controlLimits.clientsMax, 0),
    capacity: integerFlag(flags, "capacity", 1, controlLimits.nodeCapacityReplicasMax, controlLimits.generatorCapacityReplicasDefault),
    addressing: addressing satisfies Addressing,
    port: integerFlag(flags, "port", 1, 65_535, controlLimits.portDefault),
    ...(name === undefined ? {} : { name }),
  });
}

function summary(topology: Topology): object {
  return {
    ok: true,
    version: topology.version,
    nodes: topology.nodes.length,
    rows: new Set(topology.nodes.map((n) => n.row)).size,
    racks: new Set(topology.nodes.map((n) => n.rack)).size,
    powerDomains: topology.powerDomains.length,
    colors: topology.colors.length,
    clients: topology.clients.length,
  };
}

async function readOne(flags: Flags): Promise<Topology | TopologyError> {
  if (flags.positional.length !== 1) throw new UsageError("expected exactly one topology FILE");
  return loadTopology(flags.positional[0]!);
}

async function place(args: readonly string[]): Promise<object | TopologyError | PlacementError> {
  const flags = parseFlags(args, ["row", "primary-row", "replica-row", "color", "size"]);
  const row = flags.values.get("row");
  if (row === undefined) throw new UsageError("flag --row is required");
  const size = integerFlag(flags, "size", 1, controlLimits.cellSizeMax, controlLimits.cellSizeDefault);
  const topology = await readOne(flags);
  if (topology instanceof TopologyError) return topology;
  const placer = new Placer(topology);
  const rowIndex = placer.cluster.rowIndex.get(row);
  if (rowIndex === undefined) return new PlacementError(`Cannot place cell: row "${row}" has no nodes`);
  const color = flags.values.get("color") ?? placer.cluster.colorNames[placer.leastLoadedColor(rowIndex)]!;
  const placement = placer.place({
    size,
    color,
    clients: {
      instance: { row },
      primary: { row: flags.values.get("primary-row") ?? row },
      replica: { row: flags.values.get("replica-row") ?? row },
    },
  });
  if (placement instanceof PlacementError) return placement;
  const byId = new Map(topology.nodes.map((n) => [n.id, n]));
  const where = placement.nodes.map((id) => {
    const node = byId.get(id)!;
    return { id, address: node.address, rack: node.rack, power: node.power };
  });
  return { ...placement, where };
}

/**
 * Runs `physalia topology <args>` and returns the exit code: 2 for a topology file that is
 * not valid (bad input, like a usage error, which main reports), 1 when a valid topology has
 * no room for a placement.
 */
export async function topologyCommand(args: string[], print: (line: string) => void = console.log): Promise<number> {
  const [command, ...rest] = args;
  let result: object | TopologyError | PlacementError;
  switch (command) {
    case "generate": {
      const topology = generate(rest);
      if (topology instanceof TopologyError) {
        result = topology;
        break;
      }
      print(formatTopology(topology).replace(/\n$/, ""));
      return 0;
    }
    case "validate": {
      const flags = parseFlags(rest, []);
      const topology = await readOne(flags);
      result = topology instanceof TopologyError ? topology : summary(topology);
      break;
    }
    case "place":
      result = await place(rest);
      break;
    default:
      throw new UsageError(command === undefined ? "missing subcommand: generate, validate or place" : `unknown subcommand ${quote(command)}`);
  }
  if (result instanceof TopologyError) throw new InputError(result.message);
  if (result instanceof Error) throw new CliError(result.message);
  print(JSON.stringify(result, null, 2));
  return 0;
}
