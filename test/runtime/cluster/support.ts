// Real node processes for the runtime and transport tests: each node on the runtime and
// transport it is given (the compiled binary, Bun or Deno from sources; UDP or data channels).

import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeKeyDirectory } from "../../../src/cli/keys.ts";
import { type ChildProcess, runtime } from "../../../src/runtime/mod.ts";

const root = join(import.meta.dirname ?? ".", "../../..");
export const binary = join(root, "dist/physalia");
const main = join(root, "src/cli/main.ts");
const bun = join(root, "node_modules/.bin/bun");
const deno = join(root, "node_modules/.bin/deno");

export type Runner = "binary" | "bun" | "deno";
export type LinkKind = "udp" | "datachannel";

export function commandFor(runner: Runner): string[] {
  if (runner === "binary") return [binary];
  if (runner === "bun") return [bun, main];
  return [deno, "run", "-A", "--unstable-net", `--config=${join(root, "deno.json")}`, main];
}

export interface NodeSpec {
  readonly runner: Runner;
  readonly transport: LinkKind;
}

export class Colony {
  readonly ids: string[];
  private readonly processes = new Map<string, ChildProcess>();
  private constructor(readonly dir: string, readonly specs: readonly NodeSpec[], readonly basePort: number) {
    this.ids = specs.map((_, i) => `n${i + 1}`);
  }

  static async create(specs: readonly NodeSpec[]): Promise<Colony> {
    if (!existsSync(binary)) throw new Error(`${binary} is missing: run npm run build first`);
    const dir = await mkdtemp(join(tmpdir(), "physalia-runtime-"));
    const colony = new Colony(dir, specs, 10_000 + Math.floor(Math.random() * 20_000));
    const topology = {
      version: 1, powerDomains: ["p1", "p2", "p3"], colors: ["blue"],
      nodes: specs.map((spec, i) => ({ id: `n${i + 1}`, address: `127.0.0.1:${colony.basePort + i}`, row: "r1", rack: `k${i % 3}`, power: `p${(i % 3) + 1}`, color: "blue", capacity: 1000, transport: spec.transport })),
    };
    await writeFile(colony.topologyPath, JSON.stringify(topology));
    await writeKeyDirectory(join(dir, "keys"), ["blue"]);
    return colony;
  }

  static async start(specs: readonly NodeSpec[]): Promise<Colony> {
    const colony = await Colony.create(specs);
    for (const id of colony.ids) colony.startNode(id);
    for (const id of colony.ids) await colony.waitUp(id);
    return colony;
  }

  get topologyPath(): string {
    return join(this.dir, "topology.json");
  }

  /** The node key file; ctl gets the control file, since tests create cells. */
  get keysPath(): string {
    return join(this.dir, "keys", "node-blue.json");
  }

  get controlKeysPath(): string {
    return join(this.dir, "keys", "control.json");
  }

  dataDir(id: string): string {
    return join(this.dir, "data", id);
  }

  metricsPort(id: string): number {
    return this.basePort + 1000 + this.ids.indexOf(id);
  }

  nodeArgs(id: string): string[] {
    return ["node", "--topology", this.topologyPath, "--id", id, "--data", this.dataDir(id), "--keys", this.keysPath, "--metrics", `127.0.0.1:${this.metricsPort(id)}`];
  }

  startNode(id: string, runner: Runner = (this.specs[this.ids.indexOf(id)] as NodeSpec).runner): ChildProcess {
    const child = runtime.spawn([...commandFor(runner), ...this.nodeArgs(id)], { stdoutPath: join(this.dir, `${id}.out`), stderrPath: join(this.dir, `${id}.err`) });
    this.processes.set(id, child);
    return child;
  }

  async waitUp(id: string, timeoutMs = 30_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const ok = await fetch(`http://127.0.0.1:${this.metricsPort(id)}/status`, { signal: AbortSignal.timeout(500) }).then((r) => r.ok, () => false);
      if (ok) return;
      if (this.processes.get(id)?.exitCode !== null) throw new Error(`node ${id} exited: ${this.stderr(id)}`);
      await runtime.sleep(50);
    }
    throw new Error(`node ${id} did not come up`);
  }

  stderr(id: string): string {
    const path = join(this.dir, `${id}.err`);
    return existsSync(path) ? readFileSync(path, "utf8").trim() : "";
  }

  async metrics(id: string): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.metricsPort(id)}/metrics`, { signal: AbortSignal.timeout(1_000) })).text();
  }

  async kill(id: string): Promise<void> {
    const child = this.processes.get(id);
    child?.kill("SIGKILL");
    await child?.exited;
    this.processes.delete(id);
  }

  /** Runs `physalia ctl` against this colony, on the given runner. */
  async ctl(runner: Runner, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const out = join(this.dir, `ctl-${Math.random().toString(36).slice(2)}`);
    const child = runtime.spawn([...commandFor(runner), "ctl", "--topology", this.topologyPath, "--keys", this.controlKeysPath, "--timeout", "20000", ...args], { stdoutPath: `${out}.out`, stderrPath: `${out}.err` });
    const code = await child.exited;
    await runtime.sleep(20); // A Deno parent copies the child's output just after it exits.
    return { code, out: readFileSync(`${out}.out`, "utf8").trim(), err: readFileSync(`${out}.err`, "utf8").trim() };
  }

  async stop(): Promise<void> {
    for (const child of this.processes.values()) child.kill("SIGKILL");
    await Promise.all([...this.processes.values()].map((c) => c.exited));
    if (!process.env.KEEP) await rm(this.dir, { recursive: true, force: true });
  }
}
