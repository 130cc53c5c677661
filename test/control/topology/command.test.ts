// `physalia topology ...` (src/cli/topology.ts), tested here beside the topology model it fronts.
import { describe, expect, test } from "bun:test";
import { main } from "../../../src/cli/main.ts";
import { parseTopology } from "../../../src/control/topology/parse.ts";
import { TopologyError } from "../../../src/control/topology/types.ts";

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(["topology", ...args], { out: (line) => (stdout += `${line}\n`), err: (line) => (stderr += `${line}\n`) });
  return { code, stdout, stderr };
}

describe("physalia topology", () => {
  test("generate prints a topology that parses, with the shape asked for", async () => {
    const { code, stdout } = await run(["generate", "--rows", "2", "--racks", "3", "--nodes", "4", "--power", "3", "--colors", "2", "--seed", "7", "--clients", "5"]);
    expect(code).toBe(0);
    const topology = parseTopology(stdout);
    if (topology instanceof TopologyError) throw topology;
    expect(topology.nodes.length).toBe(24);
    expect(topology.clients.length).toBe(5);
  });

  test("generate with --addresses=loopback numbers ports from --port", async () => {
    const { stdout } = await run(["generate", "--rows=1", "--racks=1", "--nodes=2", "--power=1", "--colors=1", "--seed=0", "--addresses=loopback", "--port=9000"]);
    expect(stdout).toContain('"address":"127.0.0.1:9000"');
    expect(stdout).toContain('"address":"127.0.0.1:9001"');
  });

  test.each([
    [["generate", "--rows", "2"], "flag --racks is required"],
    [["generate", "--rows", "x", "--racks", "1", "--nodes", "1", "--power", "1", "--colors", "1", "--seed", "1"], 'flag --rows must be an integer from 1 to 255, not "x"'],
    [["generate", "--floors", "2"], 'unknown flag "--floors"'],
    [["generate", "--rows"], "flag --rows needs a value"],
    [["teleport"], 'unknown subcommand "teleport"'],
    [[], "missing subcommand: generate, validate or place"],
    [["validate"], "expected exactly one topology FILE"],
    [["place", "topology/local.json"], "flag --row is required"],
  ])("%p says why in one line, says where the usage is, and exits 2", async (args, reason) => {
    const { code, stdout, stderr } = await run(args);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toBe(`physalia topology: ${reason}\n(physalia topology --help shows the usage)\n`);
  });

  test("validate summarizes a good file and names the problem in a bad one", async () => {
    const good = await run(["validate", "topology/small.json"]);
    expect(good.code).toBe(0);
    expect(JSON.parse(good.stdout)).toMatchObject({ ok: true, nodes: 32, rows: 2, racks: 8, powerDomains: 3, colors: 2 });
    const bad = await run(["validate", "topology/absent.json"]);
    // A file that cannot be read is bad input, like a usage error (exit 2).
    expect(bad.code).toBe(2);
    expect(bad.stderr).toStartWith('physalia topology: Cannot load topology "topology/absent.json"');
  });

  test("place shows a strict 7-replica cell on the local colony", async () => {
    const { code, stdout } = await run(["place", "topology/local.json", "--row", "r1"]);
    expect(code).toBe(0);
    const placement = JSON.parse(stdout);
    expect(placement.nodes.length).toBe(7);
    expect(placement.relaxed).toEqual([]);
    expect(new Set(placement.where.map((w: { rack: string }) => w.rack)).size).toBe(3);
  });
});
