// `physalia node` start-up (issue 15, defects 3, 11, 12, 13): a data directory locked by
// the OS, not by a pid that may be reused or not yet reaped; a --data that is a file, a
// metrics address off loopback and a port in use each said in one line.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeKeyDirectory } from "../../src/cli/keys.ts";
import { type DirectoryLock, lockDirectory } from "../../src/cli/lock.ts";

const root = join(import.meta.dir, "../..");
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function scratch(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "physalia-node-"));
  dirs.push(dir);
  return dir;
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const child = Bun.spawn([process.execPath, join(root, "src/cli/main.ts"), ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, out, err };
}

async function colonyFiles(port: number): Promise<{ dir: string; topology: string; keys: string }> {
  const dir = await scratch();
  const topology = join(dir, "topology.json");
  await writeFile(topology, JSON.stringify({ version: 1, powerDomains: ["p1"], colors: ["blue"], nodes: [{ id: "n1", address: `127.0.0.1:${port}`, row: "r1", rack: "k1", power: "p1", color: "blue", capacity: 10 }] }));
  await writeKeyDirectory(join(dir, "keys"), ["blue"]);
  return { dir, topology, keys: join(dir, "keys", "node-blue.json") };
}

describe("the data directory lock", () => {
  test("refuses a second holder while the first holds it", async () => {
    const dir = await scratch();
    const first = await lockDirectory(dir);
    await expect(lockDirectory(dir)).rejects.toThrow("another node process");
    first.release();
    (await lockDirectory(dir)).release();
  });

  test("is not fooled by a live pid in a LOCK file (a pid reused after a reboot)", async () => {
    const dir = await scratch();
    // pid 1 is always alive: the old pid lock refused this directory for good.
    await writeFile(join(dir, "LOCK"), "1\n");
    const lock = await lockDirectory(dir);
    lock.release();
  });

  test("is free the moment its owner is killed, reaped or not", async () => {
    const dir = await scratch();
    const script = join(dir, "hold.ts");
    await writeFile(script, `import { lockDirectory } from ${JSON.stringify(join(root, "src/cli/lock.ts"))};\nawait lockDirectory(${JSON.stringify(join(dir, "data"))});\nconsole.log("locked");\nawait Bun.sleep(60_000);\n`);
    const child = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "inherit" });
    const reader = child.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("locked");
    await expect(lockDirectory(join(dir, "data"))).rejects.toThrow(`pid ${child.pid}`);
    child.kill("SIGKILL");
    // The kernel drops the lock as the process ends, before anyone reaps it.
    let lock: DirectoryLock | null = null;
    for (let i = 0; i < 50 && lock === null; i++) {
      lock = await lockDirectory(join(dir, "data")).catch(() => null);
      if (lock === null) await Bun.sleep(20);
    }
    expect(lock).not.toBeNull();
    lock?.release();
    await child.exited;
  });
});

describe("physalia node says what is wrong in one line", () => {
  test("--data pointing at a file is bad input, not a page of bundle source", async () => {
    const files = await colonyFiles(30_000 + Math.floor(Math.random() * 10_000));
    const file = join(files.dir, "a-file");
    await writeFile(file, "x");
    const result = await run(["node", "--topology", files.topology, "--id", "n1", "--data", file, "--keys", files.keys]);
    expect(result.code).toBe(2);
    expect(result.err.trim()).toBe(`physalia node: Cannot use --data ${file}: it is a file, not a directory`);
  });

  test("metrics are loopback only", async () => {
    const files = await colonyFiles(30_000 + Math.floor(Math.random() * 10_000));
    const result = await run(["node", "--topology", files.topology, "--id", "n1", "--data", join(files.dir, "data"), "--keys", files.keys, "--metrics", "0.0.0.0:9999"]);
    expect(result.code).toBe(2);
    expect(result.err).toContain("--metrics must be on loopback");
  });

  test("a node port in use is named as such", async () => {
    const port = 30_000 + Math.floor(Math.random() * 10_000);
    const taken = await Bun.udpSocket({ hostname: "127.0.0.1", port });
    try {
      const files = await colonyFiles(port);
      const result = await run(["node", "--topology", files.topology, "--id", "n1", "--data", join(files.dir, "data"), "--keys", files.keys]);
      expect(result.code).toBe(1);
      expect(result.err.trim()).toBe(`physalia node: Cannot start node n1: its address 127.0.0.1:${port} is in use (another node, or another colony on the same ports?)`);
    } finally {
      taken.close();
    }
  });
});
