// Topology to text: valid JSON with one node or client per line, so that a file of ten
// thousand nodes stays small, greppable and diffable. parseTopology reads it back unchanged.

import type { Topology, TopologyClient, TopologyNode } from "./types.ts";

function nodeLine(node: TopologyNode): string {
  const { id, address, row, rack, power, color, capacity } = node;
  // The transport is written only when the file named it, so files without it read back unchanged.
  return JSON.stringify(node.transport === undefined ? { id, address, row, rack, power, color, capacity } : { id, address, row, rack, power, color, capacity, transport: node.transport });
}

function clientLine(client: TopologyClient): string {
  const { id, kind, row, rack } = client;
  return JSON.stringify(client.power === undefined ? { id, kind, row, rack } : { id, kind, row, rack, power: client.power });
}

function list(lines: readonly string[]): string {
  return lines.length === 0 ? "[]" : `[\n    ${lines.join(",\n    ")}\n  ]`;
}

export function formatTopology(topology: Topology): string {
  const head = [`  "version": ${topology.version}`];
  if (topology.name !== undefined) head.push(`  "name": ${JSON.stringify(topology.name)}`);
  head.push(`  "powerDomains": ${JSON.stringify(topology.powerDomains)}`);
  head.push(`  "colors": ${JSON.stringify(topology.colors)}`);
  head.push(`  "nodes": ${list(topology.nodes.map(nodeLine))}`);
  head.push(`  "clients": ${list(topology.clients.map(clientLine))}`);
  return `{\n${head.join(",\n")}\n}\n`;
}
