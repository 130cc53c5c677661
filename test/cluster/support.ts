// Real node processes on loopback, started from the built binary, for the cluster tests.

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { PhysaliaClient } from "../../src/client/client.ts";
import { writeKeyDirectory } from "../../src/cli/keys.ts";
import type { Endpoint } from "../../src/transport/transport.ts";
import { openUdp } from "../../src/transport/udp.ts";
import { parseKeyFile } from "../../src/wire/keyfile.ts";
import { KeyFileError, type KeySet } from "../../src/wire/keyring.ts";

export const binary = join(import.meta.dir, "../../dist/physalia");

export interface ColonyClientOptions {
  readonly nodes?: ReadonlyMap<string, Endpoint>;
  readonly deadlineMs?: number;
}

/** Polls `check` until it holds, or throws naming `what`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check().catch(() => false)) return;
    await Bun.sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export class ProcessColony {
  readonly ids: string[];
  readonly endpoints = new Map<string, Endpoint>();
  private readonly processes = new Map<string, Subprocess>();
  dir = "";
  private constructor(readonly count: number, readonly basePort: number) {
    this.ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
    this.ids.forEach((id, i) => this.endpoints.set(id, { host: "127.0.0.1", port: basePort + i }));
  }

  /**
   * Starts `count` nodes. With `rows`, they are spread over that many rows (r1, r2, ...), the
   * first count/rows in r1 and so on, each row with three racks and three power domains;
   * `clients` go into the topology as they are.
   */
  static async start(count: number, options: { rows?: number; clients?: readonly { id: string; kind: string; row: string; rack: string }[] } = {}): Promise<ProcessColony> {
    if (!existsSync(binary)) throw new Error(`${binary} is missing: run npm run build first`);
    // Below the kernel's ephemeral range (32768 and up), where any client socket may sit:
    // a node (or its metrics port, 1,000 up) must not find its port taken.
    const colony = new ProcessColony(count, 10_000 + Math.floor(Math.random() * 20_000));
    colony.dir = await mkdtemp(join(tmpdir(), "physalia-cluster-"));
    const rows = options.rows ?? 1;
    const perRow = Math.ceil(count / rows);
    const topology = {
      version: 1,
      powerDomains: ["p1", "p2", "p3"],
      colors: ["blue"],
      nodes: colony.ids.map((id, i) => {
        const row = rows === 1 ? "r1" : `r${Math.floor(i / perRow) + 1}`;
        return { id, address: `127.0.0.1:${colony.basePort + i}`, row, rack: rows === 1 ? `k${i % 3}` : `${row}-k${i % 3}`, power: `p${(i % 3) + 1}`, color: "blue", capacity: 100000 };
      }),
      ...(options.clients === undefined ? {} : { clients: options.clients }),
    };
    await writeFile(colony.topologyPath, JSON.stringify(topology));
    await writeKeyDirectory(colony.keysDir, ["blue"]);
    for (const id of colony.ids) colony.startNode(id);
    for (const id of colony.ids) await colony.waitUp(id);
    return colony;
  }

  get topologyPath(): string {
    return join(this.dir, "topology.json");
  }

  /** The colony's key files, as physalia keys generate writes them. */
  get keysDir(): string {
    return join(this.dir, "keys");
  }

  get nodeKeysPath(): string {
    return join(this.keysDir, "node-blue.json");
  }

  get clientKeysPath(): string {
    return join(this.keysDir, "client.json");
  }

  get controlKeysPath(): string {
    return join(this.keysDir, "control.json");
  }

  /** The rings in one of the key files, as they are now. */
  async keys(file: "client.json" | "control.json" | "node-blue.json" = "control.json"): Promise<KeySet> {
    const parsed = parseKeyFile(await readFile(join(this.keysDir, file), "utf8"));
    if (parsed instanceof KeyFileError) throw parsed;
    return parsed.keys;
  }

  metricsPort(id: string): number {
    return this.basePort + 1000 + this.ids.indexOf(id);
  }

  startNode(id: string): Subprocess {
    const child = Bun.spawn([binary, "node", "--topology", this.topologyPath, "--id", id, "--data", join(this.dir, id), "--keys", this.nodeKeysPath, "--metrics", `127.0.0.1:${this.metricsPort(id)}`], {
      stdout: Bun.file(join(this.dir, `${id}.out`)),
      stderr: Bun.file(join(this.dir, `${id}.err`)),
    });
    this.processes.set(id, child);
    return child;
  }

  async waitUp(id: string, timeoutMs = 15_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if (await this.status(id).catch(() => null)) return;
      await Bun.sleep(50);
    }
    throw new Error(`node ${id} did not come up`);
  }

  async status(id: string, cell?: string): Promise<Record<string, unknown> | null> {
    const query = cell === undefined ? "" : `?cell=${encodeURIComponent(cell)}`;
    // A paused (SIGSTOP) node accepts the connection and never answers: give up quickly.
    const response = await fetch(`http://127.0.0.1:${this.metricsPort(id)}/status${query}`, { signal: AbortSignal.timeout(500) });
    return response.ok ? ((await response.json()) as Record<string, unknown>) : null;
  }

  async metrics(id: string): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.metricsPort(id)}/metrics`, { signal: AbortSignal.timeout(1_000) })).text();
  }

  /** Frames node `id` dropped for `reason` since it started, from its /metrics. */
  async dropped(id: string, reason: string): Promise<number> {
    const line = (await this.metrics(id)).split("\n").find((l) => l.startsWith(`physalia_frames_dropped_total{reason="${reason}",`));
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
  }

  signal(id: string, signal: NodeJS.Signals): void {
    this.processes.get(id)?.kill(signal);
  }

  /** Stops a node gracefully (SIGTERM), starts it again with the files as they are now, and waits until it serves. */
  async restart(id: string): Promise<void> {
    const child = this.processes.get(id);
    child?.kill("SIGTERM");
    await child?.exited;
    this.processes.delete(id);
    this.startNode(id);
    await this.waitUp(id);
  }

  async kill(id: string): Promise<void> {
    const child = this.processes.get(id);
    child?.kill("SIGKILL");
    await child?.exited;
    this.processes.delete(id);
  }

  /**
   * A client holding the key file given (by default the control file, which may also create
   * cells). `nodes` replaces the nodes' addresses (a proxy's, or fewer nodes).
   */
  async client(id: string, file: "client.json" | "control.json" = "control.json", options: ColonyClientOptions = {}): Promise<PhysaliaClient> {
    return new PhysaliaClient({
      id,
      nodes: options.nodes ?? this.endpoints,
      keys: await this.keys(file),
      transport: await openUdp({ host: "127.0.0.1", port: 0 }),
      deadlineMs: options.deadlineMs ?? 20_000,
    });
  }

  /** The node that says it leads `cell`, asking only the nodes given (paused ones would make us wait). */
  async leaderOf(cell: string, among: readonly string[] = this.ids): Promise<string | null> {
    const roles = await Promise.all(among.map(async (id) => ((await this.status(id, cell).catch(() => null))?.role === "leader" ? id : null)));
    return roles.find((id) => id !== null) ?? null;
  }

  /** The UDP port of node `id`. */
  port(id: string): number {
    const endpoint = this.endpoints.get(id);
    if (endpoint === undefined) throw new Error(`no node ${id}`);
    return endpoint.port;
  }

  /** Runs `physalia ctl` against this colony, with the control key file for control operations and the client file otherwise. */
  async ctl(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const control = ["create", "add-member", "remove-member", "attach"].includes(args[0] ?? "");
    const child = Bun.spawn([binary, "ctl", "--topology", this.topologyPath, "--keys", control ? this.controlKeysPath : this.clientKeysPath, ...args], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    return { code, out: out.trim(), err: err.trim() };
  }

  /** Starts a `physalia control` process named `id`; its output goes to `<id>.out`. */
  startControl(id: string, ...flags: string[]): Subprocess {
    const child = Bun.spawn([binary, "control", "--topology", this.topologyPath, "--keys", this.controlKeysPath, "--id", id, ...flags], {
      stdout: Bun.file(join(this.dir, `${id}.out`)),
      stderr: Bun.file(join(this.dir, `${id}.err`)),
    });
    this.processes.set(id, child);
    return child;
  }

  /** What a process printed so far. */
  async output(id: string): Promise<string> {
    return readFile(join(this.dir, `${id}.out`), "utf8").catch(() => "");
  }

  async stop(): Promise<void> {
    for (const child of this.processes.values()) {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    }
    await Promise.all([...this.processes.values()].map((c) => c.exited));
    if (!process.env.KEEP) await rm(this.dir, { recursive: true, force: true });
  }
}
