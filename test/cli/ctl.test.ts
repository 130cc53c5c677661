// `physalia ctl` as a user meets it (issue 15, defects 2, 6-10, 13): one rule for exit
// codes and output, a usage error in one line, `--` and `help ctl`, flags that do not apply,
// and the failures a colony gives said plainly. Runs main() in this process against real
// nodes on loopback UDP.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readKeys, readTopology } from "../../src/cli/colony.ts";
import { writeKeyDirectory } from "../../src/cli/keys.ts";
import { clientBindAddress } from "../../src/cli/links.ts";
import { main } from "../../src/cli/main.ts";
import { limits } from "../../src/limits.ts";
import { MemoryLog } from "../../src/node/log.ts";
import { PhysaliaNode } from "../../src/node/node.ts";
import type { Endpoint } from "../../src/transport/transport.ts";
import { openUdp } from "../../src/transport/udp.ts";

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

async function physalia(...argv: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (line) => out.push(line), err: (line) => err.push(line) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

let dir = "";
let topologyPath = "";
let nodes: PhysaliaNode[] = [];
const basePort = 30_000 + Math.floor(Math.random() * 10_000);

function ctl(...args: string[]): Promise<Run> {
  const control = ["create", "add-member", "remove-member"].includes(args[0] ?? "");
  return physalia("ctl", "--topology", topologyPath, "--keys", join(dir, "keys", control ? "control.json" : "client.json"), ...args);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "physalia-ctl-"));
  topologyPath = join(dir, "topology.json");
  const ids = ["n1", "n2", "n3"];
  await writeFile(topologyPath, JSON.stringify({
    version: 1, powerDomains: ["p1", "p2", "p3"], colors: ["blue"],
    nodes: ids.map((id, i) => ({ id, address: `127.0.0.1:${basePort + i}`, row: "r1", rack: `k${i}`, power: `p${i + 1}`, color: "blue", capacity: 1000 })),
  }));
  await writeKeyDirectory(join(dir, "keys"), ["blue"]);
  await writeKeyDirectory(join(dir, "other-keys"), ["blue"]);
  await writeFile(join(dir, "broken.json"), '{"version": 1, "nodes": [');
  const { keys } = await readKeys(join(dir, "keys", "node-blue.json"), ["node"]);
  const peers = new Map<string, Endpoint>(ids.map((id, i) => [id, { host: "127.0.0.1", port: basePort + i }]));
  nodes = await Promise.all(ids.map(async (id, i) => {
    const transport = await openUdp({ host: "127.0.0.1", port: basePort + i });
    return new PhysaliaNode({ id: `${id}~${"0".repeat(15)}${i + 1}`, peers: new Map([...peers].filter(([p]) => p !== id)), keys, log: new MemoryLog(), transport });
  }));
  for (const node of nodes) node.start();
  expect((await ctl("create", "vol")).code).toBe(0);
});

afterAll(async () => {
  for (const node of nodes) await node.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("one rule for exit codes and output", () => {
  test("a key too long is the same typed answer, exit 2, whether put or tx carries it", async () => {
    const put = await ctl("put", "vol", "k".repeat(300), "v");
    const tx = await ctl("tx", "vol", JSON.stringify({ write: [{ put: "k".repeat(258), value: "v" }] }));
    for (const run of [put, tx]) {
      expect(run.code).toBe(2);
      expect(JSON.parse(run.out)).toMatchObject({ status: "rejected", reason: "keyTooLarge" });
      expect(run.err).toBe("");
    }
  });

  test("a value over the limit is answered valueTooLarge at once (exit 2), not after a 10 s wait", async () => {
    const run = await ctl("put", "vol", "k", "x".repeat(limits.valueBytesMax + 1));
    expect(run.code).toBe(2);
    expect(JSON.parse(run.out)).toMatchObject({ status: "rejected", reason: "valueTooLarge" });
  });

  test("a topology file that does not parse is bad input: exit 2, one line", async () => {
    const run = await physalia("ctl", "--topology", join(dir, "broken.json"), "--keys", join(dir, "keys", "client.json"), "get", "vol", "k");
    expect(run.code).toBe(2);
    expect(run.err.split("\n").length).toBe(1);
    expect(run.err).toStartWith("physalia ctl: ");
  });

  test("a usage error is one line and a pointer to the usage, never the whole usage", async () => {
    const run = await ctl("put", "vol", "k");
    expect(run.code).toBe(2);
    expect(run.err).toBe("physalia ctl: expected: put CELL KEY VALUE\n(physalia ctl --help shows the usage)");
    expect(run.out).toBe("");
  });

  test("a 100,000-digit integer is not echoed back in full", async () => {
    const digits = "7".repeat(100_000);
    for (const run of [await ctl("put", "vol", "k", digits), await ctl("increment", "vol", "k", digits), await ctl("put", "vol", "k", `{"int": "${digits}"}`)]) {
      expect(run.code).toBe(2);
      expect(run.err.length + run.out.length).toBeLessThan(400);
    }
  });

  test("malformed JSON and floats are refused, not stored", async () => {
    for (const value of ['{"int":"5"', "[1,2", "NaN", "True", "1.0", "1e3"]) {
      const run = await ctl("put", "vol", "k", value);
      expect(run.code).toBe(2);
      expect(run.out).toBe("");
    }
    const large = await ctl("put", "vol", "k", "9007199254740993");
    expect(large.err).toContain("9007199254740993");
    expect(large.err).not.toContain("9007199254740992");
  });
});

describe("arguments", () => {
  test("physalia control refuses pacing out of range in one line, before reading anything", async () => {
    for (const [flag, value] of [["--in-flight", "0"], ["--in-flight", "65537"], ["--steps", "0"], ["--in-flight", "two"]] as const) {
      const run = await physalia("control", "--topology", topologyPath, "--keys", join(dir, "keys", "control.json"), flag, value);
      expect(run.code).toBe(2);
      expect(run.err.split("\n")[0]).toStartWith("physalia control: ");
      expect(run.err.split("\n")[0]).toContain(flag);
      expect(run.out).toBe("");
    }
  });

  test("get takes 64 keys, and says how many past that", async () => {
    const keys = Array.from({ length: limits.keysPerTransactionMax }, (_, i) => `k${i}`);
    const ok = await ctl("get", "vol", ...keys);
    expect(ok.code).toBe(0);
    expect(Object.keys(JSON.parse(ok.out).reads).length).toBe(limits.keysPerTransactionMax);
    const over = await ctl("get", "vol", ...keys, "one-more");
    expect(over.code).toBe(2);
    expect(over.err).toContain(`at most ${limits.keysPerTransactionMax} keys`);
  });

  test("physalia help ctl prints ctl's usage", async () => {
    const run = await physalia("help", "ctl");
    expect(run.code).toBe(0);
    expect(run.out).toStartWith("usage: physalia ctl");
    expect((await physalia("help", "nope")).code).toBe(2);
  });

  test("after --, --help is a value like any other", async () => {
    expect((await ctl("put", "vol", "flag", "--", "--help")).code).toBe(0);
    const read = await ctl("get", "vol", "flag");
    expect(JSON.parse(read.out)).toEqual({ status: "committed", reads: { flag: { str: "--help" } } });
    // Before --, it still asks for the usage.
    expect((await ctl("put", "vol", "flag", "--help")).out).toStartWith("usage: physalia ctl");
  });

  test("a flag that does not apply to the command is refused", async () => {
    const run = await ctl("put", "vol", "k", "v", "--limit", "5");
    expect(run.code).toBe(2);
    expect(run.err).toContain("flag --limit does not apply to put");
    expect((await ctl("put", "vol", "k", "v", "--eventual")).code).toBe(2);
    expect((await ctl("scan", "vol", "--limit", "5")).code).toBe(0);
  });

  test("a key given twice in tx JSON is refused, not silently the last", async () => {
    const run = await ctl("tx", "vol", '{"write": [{"put": "k", "value": 1}], "write": [{"put": "k", "value": 2}]}');
    expect(run.code).toBe(2);
    expect(run.err).toContain('duplicate key "write"');
  });

  test("increments print as typed integers, like every other value", async () => {
    const run = await ctl("increment", "vol", "counter", "5");
    expect(JSON.parse(run.out)).toEqual({ status: "committed", increments: { counter: { int: "5" } } });
  });
});

describe("what the colony says", () => {
  test("a mistyped cell name is 'no such cell', exit 1", async () => {
    const run = await ctl("get", "vol-typo", "k");
    expect(run.code).toBe(1);
    expect(run.err).toContain("No such cell: vol-typo");
  });

  test("another colony's key file is 'the nodes reject this key file', exit 1", async () => {
    const run = await physalia("ctl", "--topology", topologyPath, "--keys", join(dir, "other-keys", "client.json"), "get", "vol", "k");
    expect(run.code).toBe(1);
    expect(run.err).toContain("the nodes reject this key file");
  });

  test("the client binds loopback when every node is on loopback", async () => {
    const topology = await readTopology(topologyPath);
    expect(clientBindAddress(topology, "blue").host).toBe("127.0.0.1");
    const remote = { ...topology, nodes: topology.nodes.map((n, i) => (i === 0 ? { ...n, address: "10.1.2.3:7000" } : n)) };
    expect(clientBindAddress(remote, "blue").host).toBe("0.0.0.0");
  });
});
