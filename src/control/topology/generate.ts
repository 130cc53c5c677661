// A synthetic datacenter: rows x racks x nodes. Power domains are striped across racks (a
// rack hangs off one domain, neighbours off the next), colors are dealt round-robin over
// the nodes in order, so every rack holds every color (when it has as many nodes as there
// are colors) and the datacenter holds each color equally; clients land on random racks.
// The seed only moves the clients; the same options and seed give the same file.

import { controlLimits } from "../limits.ts";
import { Rng, seedMax } from "../../random.ts";
import type { Topology, TopologyClient, TopologyNode } from "./types.ts";
import { TopologyError } from "./types.ts";

export type Addressing = "datacenter" | "loopback";

export interface GenerateOptions {
  readonly rows: number;
  readonly racksPerRow: number;
  readonly nodesPerRack: number;
  readonly powerDomains: number;
  readonly colors: number;
  readonly seed: number;
  /** How many clients to place on random racks; a third are instances. Default 0. */
  readonly clients?: number;
  /** Cell replicas per node. */
  readonly capacity?: number;
  /** "datacenter": 10.<row>.<rack>.<node>:port. "loopback": 127.0.0.1:(port + i). */
  readonly addressing?: Addressing;
  /** The port of every node, or the first port with loopback addressing. Default 7101. */
  readonly port?: number;
  readonly name?: string;
}

const palette = ["blue", "green", "red", "yellow", "purple", "orange", "teal", "pink"];

export function colorName(index: number): string {
  return palette[index] ?? `color${index + 1}`;
}

function rangeProblem(name: string, value: number, min: number, max: number): string | null {
  return Number.isInteger(value) && value >= min && value <= max ? null : `${name} must be an integer from ${min} to ${max}`;
}

function optionsProblem(options: GenerateOptions): string | null {
  const port = options.port ?? controlLimits.portDefault;
  const nodes = options.rows * options.racksPerRow * options.nodesPerRack;
  const loopback = options.addressing === "loopback";
  return (
    rangeProblem("rows", options.rows, 1, controlLimits.generatorRowsMax) ??
    rangeProblem("racks", options.racksPerRow, 1, controlLimits.generatorRacksPerRowMax) ??
    rangeProblem("nodes", options.nodesPerRack, 1, controlLimits.generatorNodesPerRackMax) ??
    rangeProblem("power", options.powerDomains, 1, controlLimits.powerDomainsMax) ??
    rangeProblem("colors", options.colors, 1, controlLimits.colorsMax) ??
    rangeProblem("seed", options.seed, 0, seedMax) ??
    rangeProblem("clients", options.clients ?? 0, 0, controlLimits.clientsMax) ??
    rangeProblem("capacity", options.capacity ?? 1, 1, controlLimits.nodeCapacityReplicasMax) ??
    rangeProblem("port", port, 1, 65_535) ??
    (nodes > controlLimits.nodesMax ? `rows x racks x nodes must be at most ${controlLimits.nodesMax}` : null) ??
    (loopback && port + nodes - 1 > 65_535 ? `loopback ports ${port}..${port + nodes - 1} run past 65535` : null)
  );
}

export function generateTopology(options: GenerateOptions): Topology | TopologyError {
  const problem = optionsProblem(options);
  if (problem !== null) return new TopologyError(`Cannot generate topology: ${problem}`);
  const { rows, racksPerRow, nodesPerRack } = options;
  const port = options.port ?? controlLimits.portDefault;
  const capacity = options.capacity ?? controlLimits.generatorCapacityReplicasDefault;
  const powerDomains = Array.from({ length: options.powerDomains }, (_, i) => `p${i + 1}`);
  const colors = Array.from({ length: options.colors }, (_, i) => colorName(i));

  const nodes: TopologyNode[] = [];
  const rackPower: string[] = [];
  const rackNames: string[] = [];
  const rackRows: string[] = [];
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < racksPerRow; k++) {
      const rackIndex = r * racksPerRow + k;
      const rack = `r${r + 1}-k${k + 1}`;
      const power = powerDomains[rackIndex % powerDomains.length]!;
      rackNames.push(rack);
      rackRows.push(`r${r + 1}`);
      rackPower.push(power);
      for (let n = 0; n < nodesPerRack; n++) {
        const index = nodes.length;
        const address = options.addressing === "loopback" ? `127.0.0.1:${port + index}` : `10.${r + 1}.${k + 1}.${n + 1}:${port}`;
        const color = colors[index % colors.length]!;
        nodes.push({ id: `n${index + 1}`, address, row: `r${r + 1}`, rack, power, color, capacity });
      }
    }
  }

  const rng = new Rng(options.seed);
  const clients: TopologyClient[] = [];
  for (let i = 0; i < (options.clients ?? 0); i++) {
    const rackIndex = rng.nextInt(rackNames.length);
    const kind = i % 3 === 0 ? "instance" : "storage";
    clients.push({
      id: `${kind === "instance" ? "i" : "s"}${i + 1}`,
      kind,
      row: rackRows[rackIndex]!,
      rack: rackNames[rackIndex]!,
      power: rackPower[rackIndex]!,
    });
  }
  const topology: Topology = { version: 1, powerDomains, colors, nodes, clients };
  return options.name === undefined ? topology : { ...topology, name: options.name };
}
