import { afterEach, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { changeRing, keysCommand, writeKeyDirectory } from "../../src/cli/keys.ts";
import { readKeys } from "../../src/cli/colony.ts";
import { type KeyFile, formatKeyFile, parseKeyFile, parseKeyFileSpec, weakSecret } from "../../src/wire/keyfile.ts";
import { KeyFileError } from "../../src/wire/keyring.ts";
import { toHexString } from "../../src/wire/keyfile.ts";
import { testSecret } from "../support/keys.ts";

const hex = (id: number) => toHexString(testSecret(id));
const ring = (id: number, previous?: number) => ({ current: id, keys: previous === undefined ? [{ id, secret: hex(id) }] : [{ id, secret: hex(id) }, { id: previous, secret: hex(previous) }] });
const nodeFile = (extra: Record<string, unknown> = {}) => ({ version: 2, kind: "node", color: "blue", node: ring(10, 9), client: ring(1), control: ring(2), ...extra });
const problem = (input: unknown): string => {
  const parsed = parseKeyFile(typeof input === "string" ? input : JSON.stringify(input));
  expect(parsed).toBeInstanceOf(KeyFileError);
  return (parsed as KeyFileError).message;
};

describe("key files", () => {
  test("a node file holds its color's node ring and the client and control rings; each role keeps its ring apart", () => {
    const parsed = parseKeyFile(JSON.stringify(nodeFile()));
    if (parsed instanceof KeyFileError) throw parsed;
    expect(parsed.kind).toBe("node");
    expect(parsed.keys.color).toBe("blue");
    expect(parsed.keys.roles).toEqual(["node", "client", "control"]);
    expect(parsed.keys.lookup(10)?.role).toBe("node");
    expect(parsed.keys.lookup(9)?.role).toBe("node"); // The previous key, still accepted.
    expect(parsed.keys.lookup(1)?.role).toBe("client");
    expect(parsed.keys.lookup(2)?.role).toBe("control");
    expect(parsed.keys.ring("node")?.signingIds).toEqual([10, 9]);
  });

  test("a client file holds only the client ring, a control file only the control ring", () => {
    const client = parseKeyFile(JSON.stringify({ version: 2, kind: "client", client: ring(1) }));
    if (client instanceof KeyFileError) throw client;
    expect(client.keys.roles).toEqual(["client"]);
    expect(client.keys.color).toBeNull();
    const control = parseKeyFile(JSON.stringify({ version: 2, kind: "control", control: ring(2) }));
    if (control instanceof KeyFileError) throw control;
    expect(control.keys.roles).toEqual(["control"]);
    expect(problem({ version: 2, kind: "client", client: ring(1), node: ring(10) })).toContain("a client key file holds only the client ring, not the node ring");
    expect(problem({ version: 2, kind: "control", control: ring(2), client: ring(1) })).toContain("not the client ring");
    expect(problem({ version: 2, kind: "client" })).toContain("needs the client ring");
  });

  test("weak secrets are refused with a clear one-line reason", () => {
    const withSecret = (secret: string) => nodeFile({ client: { current: 1, keys: [{ id: 1, secret }] } });
    expect(problem(withSecret("00".repeat(32)))).toContain("client.keys[0].secret is all zeros");
    expect(problem(withSecret("ab".repeat(40)))).toContain("is one byte repeated");
    expect(problem(withSecret(hex(1).slice(0, 62)))).toContain("has 31 bytes; at least 32 are needed");
    expect(problem(withSecret(hex(1).slice(0, 63)))).toContain("has an odd number of hex digits (63)");
    expect(problem(withSecret(`${hex(1).slice(0, 62)}zz`))).toContain('is not hex ("z" at position 62)');
    expect(problem(withSecret("12".repeat(129)))).toContain("at most 128");
    for (const message of [problem(withSecret("00".repeat(32))), problem(withSecret(hex(1).slice(0, 63)))]) expect(message).not.toContain("\n");
    expect(weakSecret(testSecret(5))).toBeNull();
  });

  test("key ids are unique across rings, and no two rings share a secret", () => {
    expect(problem(nodeFile({ control: ring(1) }))).toContain("key id 1 is in both the client and the control ring");
    expect(problem(nodeFile({ control: { current: 2, keys: [{ id: 2, secret: hex(1) }] } }))).toContain("the client and control rings share a secret");
    expect(problem(nodeFile({ node: { current: 10, keys: [{ id: 10, secret: hex(10) }, { id: 10, secret: hex(11) }] } }))).toContain("appears twice");
  });

  test("other malformed files are refused with a reason", () => {
    const cases: [unknown, string][] = [
      ["not json", "Cannot parse key file"],
      [{ version: 1, current: 1, keys: [{ id: 1, secret: hex(1) }] }, "unsupported version 1"],
      [{ version: 2, kind: "admin" }, 'kind must be "node", "client" or "control"'],
      [nodeFile({ color: "" }), "color must be"],
      [nodeFile({ extra: 1 }), 'unknown field "extra"'],
      [nodeFile({ node: { current: 10, keys: [] } }), "one or two keys"],
      [nodeFile({ node: { current: 3, keys: [{ id: 10, secret: hex(10) }] } }), "names no key"],
      [nodeFile({ node: { current: -1, keys: [{ id: -1, secret: hex(10) }] } }), "integer from 0"],
      [nodeFile({ node: { current: 10, keys: [{ id: 10, secret: hex(10) }], spare: 1 } }), 'unknown field "spare"'],
    ];
    for (const [input, message] of cases) expect(problem(input)).toContain(message);
  });

  test("formatting and parsing a file give the same file back", () => {
    const file = parseKeyFileSpec(JSON.stringify(nodeFile())) as KeyFile;
    expect(parseKeyFileSpec(formatKeyFile(file))).toEqual(file);
  });
});

describe("physalia keys", () => {
  let dir = "";
  afterEach(async () => {
    if (dir !== "") await rm(dir, { recursive: true, force: true });
    dir = "";
  });

  test("generate writes a node file per color, the client and the control file, mode 0600, with distinct random keys", async () => {
    dir = await mkdtemp(join(tmpdir(), "physalia-keys-"));
    const out = join(dir, "keys");
    const lines: string[] = [];
    expect(await keysCommand(["generate", "--out", out, "--colors", "blue,red"], (l) => lines.push(l))).toBe(0);
    expect((await readdir(out)).sort()).toEqual(["client.json", "control.json", "node-blue.json", "node-red.json"]);
    const ids = new Set<number>();
    const secrets = new Set<string>();
    for (const name of await readdir(out)) {
      expect((await stat(join(out, name))).mode & 0o777).toBe(0o600);
      const file = parseKeyFileSpec(await readFile(join(out, name), "utf8")) as KeyFile;
      expect(file).not.toBeInstanceOf(KeyFileError);
      if (file.kind === "node") {
        ids.add(file.node.current);
        secrets.add(toHexString(file.node.keys[0]?.secret as Uint8Array));
      }
    }
    expect(ids.size).toBe(2);
    expect(secrets.size).toBe(2);
    const blue = await readKeys(join(out, "node-blue.json"), ["node"]);
    const client = await readKeys(join(out, "client.json"), ["client"]);
    // The node holds the same client ring as the client file.
    expect(blue.keys.ring("client")?.currentId).toBe(client.keys.ring("client")?.currentId as number);
    expect(blue.keys.color).toBe("blue");
    await expect(readKeys(join(out, "client.json"), ["node"])).rejects.toThrow("it is a client key file, and this command takes a node key file");
  });

  test("generate refuses to overwrite any existing key file, and writes none then", async () => {
    dir = await mkdtemp(join(tmpdir(), "physalia-keys-"));
    await writeFile(join(dir, "control.json"), "keep me");
    await expect(keysCommand(["generate", "--out", dir], () => {})).rejects.toThrow("it exists, and keys are never overwritten");
    expect(await readdir(dir)).toEqual(["control.json"]);
    expect(await readFile(join(dir, "control.json"), "utf8")).toBe("keep me");
  });

  test("generate takes the topology's colors by default, and blue without one", async () => {
    dir = await mkdtemp(join(tmpdir(), "physalia-keys-"));
    expect(await writeKeyDirectory(join(dir, "a"), ["blue"])).toContain("node-blue.json");
    const topology = join(import.meta.dirname ?? ".", "../../topology/small.json");
    const colors = (JSON.parse(await readFile(topology, "utf8")) as { colors: string[] }).colors;
    await keysCommand(["generate", "--out", join(dir, "b"), "--topology", topology], () => {});
    expect((await readdir(join(dir, "b"))).filter((n) => n.startsWith("node-")).sort()).toEqual(colors.map((c) => `node-${c}.json`).sort());
    await keysCommand(["generate", "--out", join(dir, "c")], () => {});
    expect((await readdir(join(dir, "c"))).sort()).toEqual(["client.json", "control.json", "node-blue.json"]);
    await expect(keysCommand(["generate", "--out", join(dir, "d"), "--colors", "blue,blue"], () => {})).rejects.toThrow("listed twice");
  });

  test("rotate adds a new current key in every holder of the ring; retire drops the old one", async () => {
    dir = await mkdtemp(join(tmpdir(), "physalia-keys-"));
    await writeKeyDirectory(dir, ["blue", "red"]);
    const read = async (name: string) => parseKeyFileSpec(await readFile(join(dir, name), "utf8")) as KeyFile & { kind: "node" };
    const before = await read("node-blue.json");
    expect(await changeRing(dir, { role: "client", action: "rotate" })).toEqual(["client.json", "node-blue.json", "node-red.json"]);
    const rotated = await read("node-blue.json");
    expect(rotated.client.keys.length).toBe(2);
    expect(rotated.client.keys[1]).toEqual(before.client.keys[0] as never);
    expect(rotated.client.current).not.toBe(before.client.current);
    expect((await read("node-red.json")).client).toEqual(rotated.client);
    expect(rotated.node).toEqual(before.node);
    expect((await stat(join(dir, "node-blue.json"))).mode & 0o777).toBe(0o600);
    await expect(changeRing(dir, { role: "client", action: "rotate" })).rejects.toThrow("retire it first");
    expect(await changeRing(dir, { role: "client", action: "retire" })).toEqual(["client.json", "node-blue.json", "node-red.json"]);
    expect((await read("node-blue.json")).client.keys.map((k) => k.id)).toEqual([rotated.client.current]);
    await expect(changeRing(dir, { role: "client", action: "retire" })).rejects.toThrow("only its current key");
    // A node ring belongs to one color, and only that color's file changes.
    await expect(changeRing(dir, { role: "node", action: "rotate" })).rejects.toThrow("--color C is required");
    expect(await changeRing(dir, { role: "node", color: "red", action: "rotate" })).toEqual(["node-red.json"]);
    expect((await read("node-blue.json")).node).toEqual(before.node);
    expect(await readdir(dir)).not.toContain("node-red.json.new");
  });
});
