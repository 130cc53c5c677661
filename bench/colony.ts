// What the colony benchmarks share: a colony of physalia node processes on loopback, cells
// written straight into their logs before they start (so a bench of 100,000 cells does not
// spend minutes creating them through the protocol), the CPU and memory of a process from
// /proc, and quantiles. Nothing here asserts a figure; the benches print and record them.

import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PhysaliaClient } from "../src/client/client.ts";
import { readKeys } from "../src/cli/colony.ts";
import { writeKeyDirectory } from "../src/cli/keys.ts";
import type { CellGenesis } from "../src/core/messages.ts";
import { limits } from "../src/limits.ts";
import { openLog } from "../src/storage/mod.ts";
import type { Endpoint } from "../src/transport/transport.ts";
import { openUdp } from "../src/transport/udp.ts";
import type { KeySet } from "../src/wire/keyring.ts";

export const root = join(import.meta.dir, "..");

export const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

/** p50, p99 and max of some latencies in milliseconds, sorted in place. */
export function latencySummary(latencies: number[]): { p50: number; p99: number; max: number } {
  latencies.sort((a, b) => a - b);
  return { p50: round(quantile(latencies, 0.5)), p99: round(quantile(latencies, 0.99)), max: round(latencies[latencies.length - 1] ?? 0) };
}

const ticksPerSecond = 100;

/** User plus system CPU from a /proc stat file, in milliseconds, and the command name; null once it is gone. */
function statCpu(path: string): { name: string; ms: number } | null {
  try {
    const stat = readFileSync(path, "utf8");
    // The command name may hold spaces: the fields after it start past the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { name: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")), ms: ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond };
  } catch {
    return null;
  }
}

/** User plus system CPU a live process has used, in milliseconds (from /proc; 0 once it is gone). */
export function cpuMs(pid: number): number {
  return statCpu(`/proc/${pid}/stat`)?.ms ?? 0;
}

/** CPU a live process's threads have used, in milliseconds, summed by thread name (JITWorker, Bun Pool 0, ...). */
export function threadCpuMs(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const thread = statCpu(`/proc/${pid}/task/${tid}/stat`);
    if (thread !== null) out.set(thread.name, (out.get(thread.name) ?? 0) + thread.ms);
  }
  return out;
}

/** Resident memory of a live process in bytes (VmRSS), or 0 once it is gone. */
export function rssBytes(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match === null ? 0 : Number(match[1]) * 1024;
  } catch {
    return 0;
  }
}

export function loadAverage(): number {
  try {
    return Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
  } catch {
    return 0;
  }
}

export interface ColonyOptions {
  readonly nodes?: number;
  /** Cells to write into every node's log before it starts, each with all nodes as members. */
  readonly cells?: readonly string[];
  /** Runtime flags for the node processes, such as ["--cpu-prof", "--cpu-prof-dir=DIR"]. */
  readonly runtimeFlags?: (node: number) => readonly string[];
  /** Extra environment for the node processes. */
  readonly env?: Readonly<Record<string, string>>;
  /** Where the colony keeps its files; a fresh temporary directory when absent. */
  readonly dir?: string;
  /** Start only these nodes (by index); the rest of the topology stays down. */
  readonly running?: readonly number[];
}

export interface NodeProcess {
  readonly id: string;
  readonly index: number;
  child: ChildProcess;
  /** Milliseconds from spawn to the node's "cells recovered" line. */
  startedMs: number;
}

export class Colony {
  readonly endpoints = new Map<string, Endpoint>();
  readonly processes: NodeProcess[] = [];
  keys!: KeySet;
  private constructor(
    readonly dir: string,
    readonly basePort: number,
    readonly nodes: number,
    private readonly options: ColonyOptions,
  ) {}

  static async start(options: ColonyOptions = {}): Promise<Colony> {
    const nodes = options.nodes ?? 7;
    const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "physalia-colony-")));
    const basePort = 20_000 + Math.floor(Math.random() * 8_000);
    const colony = new Colony(dir, basePort, nodes, options);
    const topology = {
      version: 1, name: "bench", powerDomains: ["p1", "p2", "p3"], colors: ["blue"],
      nodes: Array.from({ length: nodes }, (_, i) => {
        colony.endpoints.set(`n${i + 1}`, { host: "127.0.0.1", port: basePort + i });
        return { id: `n${i + 1}`, address: `127.0.0.1:${basePort + i}`, row: "r1", rack: `k${i % 3}`, power: `p${(i % 3) + 1}`, color: "blue", capacity: 10_000_000 };
      }),
    };
    await writeFile(colony.topologyPath, JSON.stringify(topology));
    await writeKeyDirectory(join(dir, "keys"), ["blue"]);
    colony.keys = (await readKeys(join(dir, "keys/control.json"), ["control"])).keys;
    if (options.cells !== undefined && options.cells.length > 0) await colony.writeCells(options.cells);
    const running = options.running ?? Array.from({ length: nodes }, (_, i) => i);
    await Promise.all(running.map((i) => colony.startNode(i)));
    return colony;
  }

  get topologyPath(): string {
    return join(this.dir, "topology.json");
  }

  get controlKeysPath(): string {
    return join(this.dir, "keys/control.json");
  }

  dataDir(index: number): string {
    return join(this.dir, `n${index + 1}`);
  }

  metricsPort(index: number): number {
    return this.basePort + 1000 + index;
  }

  /**
   * Writes every cell's genesis into each node's log, naming every node by the identity its
   * directory will have, as `create` would have. The nodes recover the cells when they start.
   */
  private async writeCells(cells: readonly string[]): Promise<void> {
    const logs = [];
    for (let i = 0; i < this.nodes; i++) {
      await mkdir(this.dataDir(i), { recursive: true });
      const opened = await openLog(this.dataDir(i));
      if (opened.log === null) throw new Error(`the fresh log of n${i + 1} is damaged`);
      logs.push({ log: opened.log, identity: `n${i + 1}~${opened.incarnation}` });
    }
    const members = logs.map((l) => l.identity);
    const batch = 10_000;
    for (let start = 0; start < cells.length; start += batch) {
      const records = cells.slice(start, start + batch).map((cell, j) => {
        const genesis: CellGenesis = { members, incarnation: (start + j).toString(16).padStart(16, "0"), alpha: limits.pipelineDepthDefault, sessionTtlMs: limits.sessionTtlMsDefault, sessionsMax: limits.sessionsPerCellMax };
        return { cell, record: { kind: "genesis" as const, genesis } };
      });
      for (const { log } of logs) log.append(records);
      await Promise.all(logs.map(({ log }) => log.sync()));
    }
    await Promise.all(logs.map(({ log }) => log.close()));
  }

  /** Starts node `index` (on another data directory if given) and waits for its status endpoint. */
  async startNode(index: number, options: { readonly dataDir?: string } = {}): Promise<NodeProcess> {
    const id = `n${index + 1}`;
    const flags = this.options.runtimeFlags?.(index) ?? [];
    const argv = [...flags, join(root, "src/cli/main.ts"), "node", "--topology", this.topologyPath, "--id", id, "--data", options.dataDir ?? this.dataDir(index), "--keys", join(this.dir, "keys/node-blue.json"), "--metrics", `127.0.0.1:${this.metricsPort(index)}`];
    const started = performance.now();
    const child = spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...this.options.env } });
    const node: NodeProcess = { id, index, child, startedMs: 0 };
    const ready = new Promise<void>((resolve, reject) => {
      let text = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        text += chunk.toString();
        if (node.startedMs === 0 && text.includes("cells recovered")) {
          node.startedMs = performance.now() - started;
          resolve();
        }
      });
      child.once("exit", (code) => reject(new Error(`node ${id} exited with ${code} before it started`)));
    });
    const existing = this.processes.findIndex((p) => p.index === index);
    if (existing >= 0) this.processes[existing] = node;
    else this.processes.push(node);
    await ready;
    for (let tries = 0; ; tries++) {
      const ok = await fetch(`http://127.0.0.1:${this.metricsPort(index)}/status`).then((r) => r.ok).catch(() => false);
      if (ok) break;
      if (tries > 600) throw new Error(`node ${id} did not serve its status`);
      await sleep(50);
    }
    return node;
  }

  pid(index: number): number {
    return this.processes.find((p) => p.index === index)?.child.pid ?? 0;
  }

  /** CPU milliseconds used so far by every running node, by index. */
  cpu(): number[] {
    return Array.from({ length: this.nodes }, (_, i) => cpuMs(this.pid(i)));
  }

  async status(index: number, cell?: string): Promise<Record<string, unknown> | null> {
    const query = cell === undefined ? "" : `?cell=${encodeURIComponent(cell)}`;
    return await fetch(`http://127.0.0.1:${this.metricsPort(index)}/status${query}`).then((r) => (r.ok ? r.json() : null)).catch(() => null) as Record<string, unknown> | null;
  }

  async metrics(index: number): Promise<Map<string, number>> {
    const text = await fetch(`http://127.0.0.1:${this.metricsPort(index)}/metrics`).then((r) => r.text()).catch(() => "");
    const out = new Map<string, number>();
    for (const line of text.split("\n")) {
      if (line.startsWith("#") || line.trim() === "") continue;
      const at = line.lastIndexOf(" ");
      out.set(line.slice(0, at), Number(line.slice(at + 1)));
    }
    return out;
  }

  /** The node (by index) whose replica of `cell` says it leads, or -1. */
  async leaderOf(cell: string): Promise<number> {
    for (let i = 0; i < this.nodes; i++) {
      const status = await this.status(i, cell);
      if (status?.role === "leader") return i;
    }
    return -1;
  }

  async client(id: string, deadlineMs = 30_000): Promise<PhysaliaClient> {
    const transport = await openUdp({ host: "127.0.0.1", port: 0 });
    return new PhysaliaClient({ id, nodes: this.endpoints, keys: this.keys, transport, deadlineMs });
  }

  kill(index: number, signal: NodeJS.Signals = "SIGKILL"): void {
    this.processes.find((p) => p.index === index)?.child.kill(signal);
  }

  /** Stops every node (SIGTERM, so profiles are written) and removes the colony's files. */
  async stop(options: { readonly keepFiles?: boolean } = {}): Promise<void> {
    await Promise.all(this.processes.map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }));
    if (options.keepFiles !== true && this.options.dir === undefined) await rm(this.dir, { recursive: true, force: true });
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs a bench script (`bench/loadgen.ts` or `bench/flood.ts`) in its own process and parses the JSON it prints last. */
export async function runGenerator<T>(script: string, config: unknown): Promise<T & { pid: number }> {
  const child = spawn(process.execPath, [join(root, script), JSON.stringify(config)], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number>((resolve) => child.once("exit", (c) => resolve(c ?? 1)));
  const line = out.trim().split("\n").pop() ?? "";
  if (code !== 0) throw new Error(`${script} exited with ${code}: ${line}`);
  return { ...(JSON.parse(line) as T), pid: child.pid ?? 0 };
}
