// Every bound of the control plane (topology, placement) lives here, next to the relations
// between them, which are checked once when this module loads. Names carry their unit last.

import { limits } from "../limits.ts";

export const controlLimits = {
  /** The only topology file version this code reads and writes. */
  topologyVersion: 1,
  /** A topology file larger than this is refused before it is parsed. */
  topologyBytesMax: 64 * 1024 * 1024,
  /** Node ids, row, rack, power domain and color names share one syntax and bound. */
  nameBytesMax: limits.plainIdBytesMax,
  nodesMax: 200_000,
  clientsMax: 2_000_000,
  powerDomainsMax: 256,
  colorsMax: 64,
  /** How many cell replicas one node may be asked to host. */
  nodeCapacityReplicasMax: 10_000_000,

  /** Cells have between one and this many replicas; Physalia uses seven. */
  cellSizeMax: 15,
  cellSizeDefault: 7,

  // The synthetic datacenter generator: addresses are 10.<row>.<rack>.<node>.
  generatorRowsMax: 255,
  generatorRacksPerRowMax: 255,
  generatorNodesPerRackMax: 254,
  generatorCapacityReplicasDefault: 100_000,
  portDefault: 7101,
} as const;

function check(condition: boolean, relation: string): void {
  if (!condition) throw new Error(`Invalid control limits: ${relation}`);
}

check(controlLimits.cellSizeDefault <= controlLimits.cellSizeMax, "the default cell size must be allowed");
check(controlLimits.cellSizeMax < 32, "per-cell bit sets fit one 32-bit word");
check(
  controlLimits.generatorRowsMax * controlLimits.generatorRacksPerRowMax * controlLimits.generatorNodesPerRackMax >= controlLimits.nodesMax,
  "the generator can reach the node limit",
);
check(controlLimits.nodesMax < 2 ** 31, "node indexes fit an Int32Array");
check(controlLimits.nodeCapacityReplicasMax * controlLimits.nodeCapacityReplicasMax < 2 ** 53, "load ratios compare exactly as products");
check(controlLimits.colorsMax <= controlLimits.nodesMax, "every color can have a node");
