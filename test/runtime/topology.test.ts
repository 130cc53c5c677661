import { describe, expect, test } from "bun:test";
import { formatTopology } from "../../src/control/topology/format.ts";
import { parseTopology } from "../../src/control/topology/parse.ts";
import { type Topology, isTopologyError } from "../../src/control/topology/types.ts";

const base = {
  version: 1, powerDomains: ["p1"], colors: ["blue"],
  nodes: [
    { id: "n1", address: "127.0.0.1:7101", row: "r1", rack: "k1", power: "p1", color: "blue", capacity: 10 },
    { id: "n2", address: "127.0.0.1:7102", row: "r1", rack: "k1", power: "p1", color: "blue", capacity: 10, transport: "datachannel" },
    { id: "n3", address: "127.0.0.1:7103", row: "r1", rack: "k1", power: "p1", color: "blue", capacity: 10, transport: "udp" },
  ],
};

describe("a node's transport in the topology", () => {
  test("is optional, udp or datachannel, and survives formatting unchanged", () => {
    const topology = parseTopology(JSON.stringify(base)) as Topology;
    expect(isTopologyError(topology)).toBe(false);
    expect(topology.nodes.map((n) => n.transport)).toEqual([undefined, "datachannel", "udp"]);
    expect("transport" in (topology.nodes[0] as object)).toBe(false);
    const again = parseTopology(formatTopology(topology)) as Topology;
    expect(again).toEqual(topology);
    expect(formatTopology(again)).toBe(formatTopology(topology));
  });

  test.each<[unknown]>([["tcp"], [""], [1], [null], [true], [["udp"]]])("refuses transport %p, naming the node", (transport) => {
    const bad = { ...base, nodes: [base.nodes[0], { ...base.nodes[1], transport }] };
    const result = parseTopology(JSON.stringify(bad));
    expect(isTopologyError(result)).toBe(true);
    expect((result as Error).message).toBe('Cannot parse topology: node "n2": transport must be "udp" or "datachannel"');
  });
});
