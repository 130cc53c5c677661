// `physalia dev` as a game-day colony (issue 15, defects 3, 4, 5, 10): it refuses ports in
// use before starting anything, keeps serving when a node dies and says so, takes game-day
// commands, prints a command that works, and leaves no nodes and no data behind when it is
// hung up on or killed outright. Real processes, from sources: npm run test:operator.

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";

const root = join(import.meta.dir, "../..");
const main = join(root, "src/cli/main.ts");

interface Dev {
  readonly child: Subprocess<"ignore", "pipe", "pipe">;
  readonly basePort: number;
  output(): string;
  errors(): string;
}

const started: Subprocess[] = [];
afterAll(async () => {
  // A failed test must not leave a colony running.
  for (const child of started) if (child.exitCode === null) child.kill("SIGTERM");
  await Promise.all(started.map((c) => c.exited));
});

function startDev(extra: string[] = []): Dev {
  const basePort = 41_000 + Math.floor(Math.random() * 9_000);
  const child = Bun.spawn([process.execPath, main, "dev", "--base-port", String(basePort), "--duration", "600", ...extra], { stdin: "ignore", stdout: "pipe", stderr: "pipe", cwd: root });
  started.push(child);
  let text = "";
  let errors = "";
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) text += decoder.decode(chunk);
  })();
  // Drained too: a pipe nobody reads fills, and then whatever writes to it stops.
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) errors += decoder.decode(chunk);
  })();
  return { child, basePort, output: () => text, errors: () => errors };
}

/** Waits for `check`; on a timeout the error carries the tail of `output` (a dev's), to say why. */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000, output?: () => string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}${output === undefined ? "" : `; its output ends:\n${output().slice(-3_000)}`}`);
    await Bun.sleep(100);
  }
}

async function sh(command: string): Promise<{ code: number; out: string; err: string }> {
  const child = Bun.spawn(["sh", "-c", command], { stdout: "pipe", stderr: "pipe", cwd: root });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, out: out.trim(), err: err.trim() };
}

const dev = (basePort: number, ...args: string[]) => sh(`node_modules/.bin/bun src/cli/main.ts dev ${args.join(" ")} --base-port ${basePort}`);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSyncSafe(`/proc/${pid}/stat`).includes(") Z ");
  } catch {
    return false;
  }
}

function readFileSyncSafe(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

async function nodePids(basePort: number): Promise<number[]> {
  const status = await dev(basePort, "status");
  return [...status.out.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
}

const dataDir = (output: string) => /data in (\S+)\)/.exec(output)?.[1] ?? "";

describe("physalia dev", () => {
  test("survives a node's death, says so, and takes game-day commands; the printed command works; SIGHUP leaves nothing behind", async () => {
    const colony = startDev();
    await until("the colony to serve", () => colony.output().includes("Stopping in 600 s"), 90_000);
    const pids = await nodePids(colony.basePort);
    expect(pids.length).toBe(11); // nine nodes and two control-plane processes

    // The hint is a command a person can paste, here, after npm install.
    const hint = /Try: (.*)/.exec(colony.output())?.[1] ?? "";
    expect(hint).toStartWith("node_modules/.bin/bun src/cli/main.ts ctl ");
    expect(JSON.parse((await sh(hint)).out)).toMatchObject({ status: "committed" });

    // A node killed behind dev's back: reported, and the colony goes on.
    process.kill(pids[2] as number, "SIGKILL");
    await until("the death to be reported", () => colony.output().includes("node n3 died"));
    expect(colony.child.exitCode).toBeNull();
    expect(JSON.parse((await sh(hint)).out)).toMatchObject({ status: "committed", reads: { primary: { str: "server-1b" } } });

    // Game day from another terminal.
    for (const [command, node, says] of [["pause", "n4", "paused n4"], ["partition", "n5", "cut n5 off"], ["kill", "n6", "killed n6"], ["resume", "n4", "resumed n4"], ["heal", "n5", "healed n5"], ["restart", "n3", "restarted n3"], ["restart", "n6", "restarted n6"]] as const) {
      const result = await dev(colony.basePort, command, node);
      expect(result.err).toBe("");
      expect(result.out).toContain(says);
    }
    expect((await dev(colony.basePort, "kill", "n42")).err).toContain("no node");
    expect(JSON.parse((await sh(hint)).out)).toMatchObject({ status: "committed" });
    expect(colony.output()).not.toContain("node n6 died"); // Its own kill is not a death.

    const now = await nodePids(colony.basePort);
    const dir = dataDir(colony.output());
    expect(existsSync(dir)).toBe(true);
    colony.child.kill("SIGHUP");
    expect(await colony.child.exited).toBe(0);
    expect(existsSync(dir)).toBe(false);
    await until("every node to be gone", () => now.every((pid) => !alive(pid)), 10_000);
  }, 240_000);

  test("refuses ports in use before it starts anything", async () => {
    const basePort = 41_000 + Math.floor(Math.random() * 9_000);
    const taken = await Bun.udpSocket({ hostname: "127.0.0.1", port: basePort + 2 });
    try {
      const result = await sh(`node_modules/.bin/bun src/cli/main.ts dev --base-port ${basePort}`);
      expect(result.code).toBe(1);
      expect(result.err).toContain(`udp 127.0.0.1:${basePort + 2} (n3's node port) is in use`);
      expect(result.err).toContain("--base-port");
      expect(result.out).not.toContain("starting");
    } finally {
      taken.close();
    }
  });

  test("its control plane replaces a killed node in the cells it served, and the standby does it when the active one is killed", async () => {
    const colony = startDev(["--load", "0"]);
    await until("the colony to serve", () => colony.output().includes("Stopping in 600 s"), 90_000);
    expect(colony.output()).toContain("(placed by the control plane)");
    const members = (/created volume-1 on ([^(]+) \(placed/.exec(colony.output())?.[1] ?? "").split(", ").map((m) => m.trim());
    expect(members.length).toBe(7);
    const dir = dataDir(colony.output());
    const logs = () => ["control-1", "control-2"].map((c) => readFileSyncSafe(join(dir, `${c}.log`))).join("\n");
    const active = () => (/control (control-\d): active/.exec(logs())?.[1] ?? null);
    await until("a control process to be active", () => active() !== null, 30_000);

    const first = members[0] as string;
    expect((await dev(colony.basePort, "kill", first)).out).toContain(`killed ${first}`);
    await until(`${first} to be removed from volume-1`, () => new RegExp(`volume-1: removed ${first}~`).test(logs()), 60_000);

    // The active control process dies; the other takes the lease and repairs the next death.
    const was = active() as string;
    expect((await dev(colony.basePort, "kill", was)).out).toContain(`killed ${was}`);
    const second = members[1] as string;
    expect((await dev(colony.basePort, "kill", second)).out).toContain(`killed ${second}`);
    const other = was === "control-1" ? "control-2" : "control-1";
    await until(`${other} to remove ${second} from volume-1`, () => new RegExp(`control ${other}: volume-1: removed ${second}~`).test(logs()), 90_000);
    const read = await sh(/Try: (.*)/.exec(colony.output())?.[1] ?? "");
    expect(JSON.parse(read.out)).toMatchObject({ status: "committed", reads: { primary: { str: "server-1b" } } });
    colony.child.kill("SIGTERM");
    expect(await colony.child.exited).toBe(0);
  }, 240_000);

  test("killed outright, its nodes stop by themselves and the next dev removes its data", async () => {
    const colony = startDev(["--load", "0"]);
    await until("the colony to serve", () => colony.output().includes("Stopping in 600 s"), 90_000, () => `${colony.output()}\nstderr: ${colony.errors()}`);
    const pids = await nodePids(colony.basePort);
    const dir = dataDir(colony.output());
    colony.child.kill("SIGKILL");
    await colony.child.exited;
    await until("the orphaned nodes to stop", () => pids.every((pid) => !alive(pid)), 10_000);
    expect(existsSync(dir)).toBe(true);
    const next = startDev(["--load", "0"]);
    await until("the next colony to serve", () => next.output().includes("Stopping in 600 s"), 90_000, () => `${next.output()}\nstderr: ${next.errors()}`);
    expect(next.output()).toContain(`removed ${dir}`);
    expect(existsSync(dir)).toBe(false);
    next.child.kill("SIGTERM");
    expect(await next.child.exited).toBe(0);
    expect(readdirSync(join(dir, "..")).filter((n) => n === dir.split("/").at(-1))).toEqual([]);
  }, 240_000);
});
