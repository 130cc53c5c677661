import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { formatTopology } from "../../../src/control/topology/format.ts";
import { generateTopology } from "../../../src/control/topology/generate.ts";
import { parseTopology } from "../../../src/control/topology/parse.ts";
import { type Topology, TopologyError } from "../../../src/control/topology/types.ts";

function sample(): Topology {
  const topology = generateTopology({ rows: 2, racksPerRow: 2, nodesPerRack: 2, powerDomains: 3, colors: 2, seed: 9, clients: 3 });
  if (topology instanceof TopologyError) throw topology;
  return topology;
}

/** The sample as plain JSON with one change applied. */
function mutated(change: (json: any) => void): string {
  const json = JSON.parse(formatTopology(sample()));
  change(json);
  return JSON.stringify(json);
}

function messageOf(text: string): string {
  const result = parseTopology(text);
  return result instanceof TopologyError ? result.message : "parsed";
}

describe("parseTopology", () => {
  test("a formatted topology parses back to the same topology", () => {
    expect(parseTopology(formatTopology(sample()))).toEqual(sample());
  });

  test("clients may be left out, and name is optional", () => {
    const result = parseTopology(mutated((j) => {
      delete j.clients;
      delete j.name;
    }));
    expect(result).not.toBeInstanceOf(TopologyError);
    if (!(result instanceof TopologyError)) expect(result.clients).toEqual([]);
  });

  test.each<[string, (json: any) => void, string]>([
    ["an empty rack", (j) => (j.nodes[2].rack = ""), 'node "n3": rack is empty'],
    ["a missing rack", (j) => delete j.nodes[2].rack, 'node "n3": rack is missing'],
    ["a duplicate node id", (j) => (j.nodes[3].id = "n1"), 'node "n1": id is used by another node'],
    ["an unknown power domain", (j) => (j.nodes[0].power = "p9"), 'node "n1": power domain "p9" is not in powerDomains'],
    ["an unknown color", (j) => (j.nodes[1].color = "mauve"), 'node "n2": color "mauve" is not in colors'],
    ["a bad address", (j) => (j.nodes[4].address = "10.0.0.1:99999"), 'node "n5": address port must be an integer from 1 to 65535'],
    ["a shared address", (j) => (j.nodes[4].address = j.nodes[0].address), 'node "n5": address 10.1.1.1:7101 is also the address of node "n1"'],
    ["a zero capacity", (j) => (j.nodes[0].capacity = 0), 'node "n1": capacity must be an integer from 1 to 10000000'],
    ["a fractional capacity", (j) => (j.nodes[0].capacity = 1.5), 'node "n1": capacity must be an integer from 1 to 10000000'],
    ["a rack in two rows", (j) => (j.nodes[4].rack = "r1-k1"), 'node "n5": rack "r1-k1" is in row "r1" elsewhere, not in row "r2"'],
    ["an id with a space", (j) => (j.nodes[0].id = "n 1"), "node #1: id may contain only A-Z, a-z, 0-9, '.', '_' and '-'"],
    ["an id of 65 bytes", (j) => (j.nodes[0].id = "n".repeat(65)), "node #1: id is longer than 64 bytes"],
    ["an id that is not a string", (j) => (j.nodes[0].id = 7), "node #1: id must be a string"],
    ["a misspelled field", (j) => (j.nodes[0].rak = "x"), 'node "n1": unknown field "rak"'],
    ["a node that is not an object", (j) => (j.nodes[1] = "n2"), "node #2: must be an object"],
    ["version 2", (j) => (j.version = 2), "version 2 is not supported (expected 1)"],
    ["no version", (j) => delete j.version, "version is missing"],
    ["no nodes", (j) => (j.nodes = []), "nodes is empty"],
    ["a power domain listed twice", (j) => j.powerDomains.push("p1"), 'powerDomains lists "p1" twice'],
    ["no colors", (j) => (j.colors = []), "colors is empty"],
    ["a client in a row without nodes", (j) => (j.clients[0].row = "r7"), 'client "i1": row "r7" has no nodes'],
    ["a client whose rack is in another row", (j) => ((j.clients[0].rack = "r2-k1"), (j.clients[0].row = "r1")), 'client "i1": rack "r2-k1" is in row "r2", not in row "r1"'],
    ["a client of an unknown kind", (j) => (j.clients[1].kind = "lambda"), 'client "s2": kind must be "instance" or "storage"'],
    ["a duplicate client id", (j) => (j.clients[2].id = "i1"), 'client "i1": id is used by another client'],
  ])("%s is refused with a message naming the record and field", (_, change, problem) => {
    expect(messageOf(mutated(change))).toBe(`Cannot parse topology: ${problem}`);
  });

  test("text that is not JSON is refused, not thrown", () => {
    expect(messageOf("{ nodes: [")).toStartWith("Cannot parse topology: invalid JSON: ");
    expect(messageOf("[]")).toBe("Cannot parse topology: the file must hold a JSON object");
  });

  test("no string makes parseTopology throw", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify(v))), (text) => {
        const result = parseTopology(text);
        expect(result instanceof TopologyError || typeof result === "object").toBe(true);
      }),
    );
  });

  test("replacing any one node field with any JSON value yields a topology or an error naming that node", () => {
    const fields = ["id", "address", "row", "rack", "power", "color", "capacity"];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 7 }), fc.constantFrom(...fields), fc.jsonValue(), (index, field, value) => {
        const text = mutated((j) => (j.nodes[index][field] = value));
        const result = parseTopology(text);
        if (result instanceof TopologyError) {
          expect(result.message).toMatch(/^Cannot parse topology: node ("[^"]+"|#\d+): /);
        } else {
          expect(result.nodes[index]![field as "id"]).toEqual(value as string);
        }
      }),
    );
  });
});
