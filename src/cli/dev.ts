// `physalia dev` (what `npm start` runs): a local colony of separate node processes on
// loopback, from the embedded default topology, with a few cells and a sample workload, a
// dashboard, and game-day commands to kill, pause, restart and partition nodes while it
// serves. A node that dies is reported and the colony goes on. It runs until Ctrl-C (or a
// SIGTERM or SIGHUP), then stops the nodes and removes its data; if it is killed outright,
// its nodes notice and stop (--exit-with-parent) and the next `dev` removes the data.
// `physalia dev --simulated` runs the same core in one process over the simulated network.

import { chmodSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import localTopology from "../../topology/local.json" with { type: "json" };
import { PhysaliaClient } from "../client/client.ts";
import { resultToJson } from "../client/json.ts";
import type { Transaction } from "../core/transaction.ts";
import { utf8 } from "../core/value.ts";
import { type ChildProcess, errorText, runtime } from "../runtime/mod.ts";
import { defaultSimOptions, runSimulation } from "../sim/mod.ts";
import { serveRoutes } from "../transport/http.ts";
import { nodePart } from "../wire/ids.ts";
import { UsageError, parseFlags, quote } from "./args.ts";
import { CliError, colorEndpoints, readKeys, readTopology } from "./colony.ts";
import { nodeKeyFileName, writeKeyDirectory } from "./keys.ts";
import { openClientLinks } from "./links.ts";
import { controlCellOf } from "../control/service.ts";
import { requestCreation } from "./ctl.ts";
import { type PortUse, unavailablePorts } from "./ports.ts";
import { hintCommand, selfCommand, shellWord } from "./self.ts";

/** In dev, a node down this long is replaced in its cells by the control plane. */
const devGraceMs = 10_000;

const gameDayCommands = ["kill", "pause", "resume", "restart", "partition", "heal"] as const;
type GameDayCommand = (typeof gameDayCommands)[number];

export const devUsage = `usage:
  physalia dev [--base-port P] [--duration S] [--data DIR] [--load N] [--transport udp|datachannel|mixed] [--control N]
      start a colony of ${localTopology.nodes.length} node processes on 127.0.0.1 (UDP ports P.., default 7101; metrics and
      the dashboard on P+1000..), create three cells, run a sample workload, then keep a light load
      of N increments a second (default 30, 0 for none) on them, so the dashboard shows what a
      fault does, and keep serving until Ctrl-C (or for S seconds). Data goes to a temporary
      directory unless --data is given.
      --transport picks how nodes are reached: UDP (the default), WebRTC data channels, or
      every second node over data channels, so that a cell mixes the two kinds of link.
      --control N runs N control-plane processes (default 2, 0 for none): the cells are placed
      by it, and a node down ${devGraceMs / 1000} s is replaced in its cells without a command.
  physalia dev kill|pause|resume|restart|partition|heal NODE [--base-port P]
  physalia dev status [--base-port P]
      game day, against the colony running on base port P: kill -9 a node, stop (SIGSTOP) and
      resume it, restart it on its data, cut it off from every peer and client and heal it.
      The same commands can be typed into the running dev's console.
  physalia dev --simulated [--seed N]
      the same core in one process, over the simulated network, with faults`;

/** Where a running dev colony on base port P says how to reach its console (mode 0600). */
function statePath(basePort: number): string {
  return join(tmpdir(), `physalia-dev-${basePort}.json`);
}

interface DevState {
  readonly pid: number;
  readonly dir: string;
  readonly control: string;
  readonly token: string;
}

export async function devCommand(args: string[], print: (line: string) => void = console.log): Promise<number> {
  const [first] = args;
  if (first !== undefined && ((gameDayCommands as readonly string[]).includes(first) || first === "status")) return remoteCommand(first, args.slice(1), print);
  if (first !== undefined && !first.startsWith("--")) throw new UsageError(`unknown dev command ${quote(first)}: ${[...gameDayCommands, "status"].join(", ")}, or flags to start a colony`);
  const flags = parseFlags(args, {
    "base-port": { type: "int", min: 1024, max: 60_000 },
    duration: { type: "int", min: 0, max: 86_400 },
    data: { type: "string" },
    load: { type: "int", min: 0, max: 1000 },
    transport: { type: "string" },
    simulated: { type: "bool" },
    seed: { type: "int", min: 0, max: 0xffff_ffff },
    control: { type: "int", min: 0, max: 3 },
  });
  if (flags.simulated === true) return simulated((flags.seed as number | undefined) ?? 7, print);
  if (flags.seed !== undefined) throw new UsageError("--seed is for dev --simulated");
  const basePort = (flags["base-port"] as number | undefined) ?? 7101;
  const links = (flags.transport as string | undefined) ?? "udp";
  if (links !== "udp" && links !== "datachannel" && links !== "mixed") throw new UsageError(`--transport must be udp, datachannel or mixed, not ${quote(links)}`);
  const transportOf = (i: number) => (links === "mixed" ? (i % 2 === 1 ? "datachannel" : "udp") : links);
  const topology = { ...localTopology, nodes: localTopology.nodes.map((n, i) => ({ ...n, address: `127.0.0.1:${basePort + i}`, transport: transportOf(i) })) };

  // Every port first: a second colony on the same ports must not start at all (it would
  // send frames to the first one's nodes), and must say why.
  // A UDP node listens on UDP; with data channels anywhere, nodes also take offers on TCP at the same port.
  const protocols = (kind: string): ("udp" | "tcp")[] => (links === "udp" ? ["udp"] : kind === "datachannel" ? ["tcp"] : ["udp", "tcp"]);
  const uses: PortUse[] = topology.nodes.flatMap((node, i): PortUse[] => [
    ...protocols(node.transport).map((protocol): PortUse => ({ endpoint: { host: "127.0.0.1", port: basePort + i }, protocol, role: `${node.id}'s node port` })),
    { endpoint: { host: "127.0.0.1", port: basePort + 1000 + i }, protocol: "tcp", role: `${node.id}'s metrics port` },
  ]);
  uses.push({ endpoint: { host: "127.0.0.1", port: basePort + 999 }, protocol: "tcp", role: "the dev console" });
  const taken = await unavailablePorts(uses);
  if (taken.length > 0) {
    throw new CliError(`Cannot start the dev colony on base port ${basePort}: ${taken.slice(0, 3).join("; ")}${taken.length > 3 ? `, and ${taken.length - 3} more` : ""}. Is another colony running? Stop it, or pick other ports with --base-port P.`);
  }
  removeAbandonedColonies(print);

  const keep = flags.data !== undefined;
  const dir = keep ? (flags.data as string) : await mkdtemp(join(tmpdir(), "physalia-dev-"));
  await mkdir(dir, { recursive: true });
  // Held for as long as this dev runs: the next dev removes a temporary colony whose lock is free.
  const lock = await runtime.lockFile(join(dir, "DEV.LOCK"));
  if (lock === null) throw new CliError(`Cannot use ${dir}: another physalia dev is using it`);
  const topologyPath = join(dir, "topology.json");
  const keysDir = join(dir, "keys");
  await writeFile(topologyPath, JSON.stringify(topology, null, 1));
  // Each holder gets only its own file: nodes their color's, the workload the control key.
  if (!existsSync(join(keysDir, "control.json"))) await writeKeyDirectory(keysDir, topology.colors);
  const controlKeys = join(keysDir, "control.json");

  print(`physalia dev: starting ${topology.nodes.length} nodes (${links}) from the embedded topology "${topology.name}" on ${runtime.name} ${runtime.version} (data in ${dir})`);
  const controls = (flags.control as number | undefined) ?? 2;
  const colony = new DevColony(dir, topologyPath, keysDir, topology.nodes.map((n, i) => ({ id: n.id, color: n.color, metricsPort: basePort + 1000 + i })), print, controls);
  const token = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
  let stopping = false;
  // A dev that ends by an uncaught error still takes its nodes and data with it.
  const lastResort = () => {
    colony.killAll();
    rmSync(statePath(basePort), { force: true });
    if (!keep) rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", lastResort);
  const console_ = await serveRoutes({ host: "127.0.0.1", port: basePort + 999 }, {
    "/command": async (request) => {
      if (request.method !== "POST" || request.headers.get("authorization") !== `Bearer ${token}`) return new Response("forbidden\n", { status: 403 });
      const body = (await request.json().catch(() => null)) as { command?: unknown; node?: unknown } | null;
      const answer = await colony.command(String(body?.command ?? ""), String(body?.node ?? ""));
      return Response.json(answer, { status: answer.ok ? 200 : 400 });
    },
  });
  writeFileSync(statePath(basePort), JSON.stringify({ pid: process.pid, dir, control: `http://127.0.0.1:${basePort + 999}/command`, token } satisfies DevState), { mode: 0o600 });
  chmodSync(statePath(basePort), 0o600);

  const stop = async (code: number): Promise<number> => {
    if (stopping) return code;
    stopping = true;
    console_.stop();
    await colony.stopAll();
    rmSync(statePath(basePort), { force: true });
    lock.release();
    if (!keep) await rm(dir, { recursive: true, force: true });
    process.removeListener("exit", lastResort);
    print("physalia dev: stopped");
    return code;
  };
  try {
    colony.startAll();
    await colony.waitUntilServing(15_000);
    const controlIds = colony.startControl();
    const code = await workload(topologyPath, controlKeys, controlIds.length > 0, print);
    if (code !== 0) return await stop(code);
    const hint = hintCommand();
    print("");
    print(`The colony is running. Dashboard: http://127.0.0.1:${basePort + 1000}/ (every node serves one)`);
    print(`Metrics and status: http://127.0.0.1:${basePort + 1000}/metrics and /status, up to port ${basePort + 1000 + topology.nodes.length - 1}`);
    print(`Try: ${hint} ctl --topology ${shellWord(topologyPath)} --keys ${shellWord(join(keysDir, "client.json"))} get volume-1 primary`);
    print(`     (create, add-member and remove-member need --keys ${shellWord(controlKeys)})`);
    print(`Game day: type kill, pause, resume, restart, partition or heal and a node (kill n3), or status, here;`);
    print(`     or from another terminal: ${hint} dev kill n3${basePort === 7101 ? "" : ` --base-port ${basePort}`}`);
    if (controlIds.length > 0) {
      print(`Control plane: ${controlIds.join(" and ")} (one active, holding the lease in ${controlCellOf(topology.colors[0] as string)}; logs in ${join(dir, "control-1.log")}):`);
      print(`     a node down ${devGraceMs / 1000} s is replaced in its cells; ctl create CELL --client i1 places a cell near a client; kill control-1 to see the other take over`);
    }
    // The signals are taken before the line that tells the user (or a test) how to stop, so a
    // signal sent the moment it is read still stops the colony cleanly.
    let signalled: (signal: string) => void = () => {};
    const signalledEarly: string[] = [];
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      process.once(signal, () => {
        signalledEarly.push(signal);
        signalled(signal);
      });
    }
    print((flags.duration as number | undefined) ? `Stopping in ${flags.duration} s.` : "Ctrl-C to stop.");
    colony.reportDeaths = true;
    const load = await startLoad(topologyPath, controlKeys, (flags.load as number | undefined) ?? 30);
    let timer: ReturnType<typeof setTimeout> | null = null;
    let closeConsole = () => {};
    const reason = await new Promise<string>((resolve) => {
      signalled = resolve;
      if (signalledEarly.length > 0) return resolve(signalledEarly[0]!);
      const seconds = flags.duration as number | undefined;
      if (seconds) timer = setTimeout(() => resolve("duration"), seconds * 1000);
      closeConsole = readConsole(colony, print, () => resolve("quit"));
    });
    // Nothing may keep the process alive once the colony is stopped.
    if (timer !== null) clearTimeout(timer);
    closeConsole();
    await load.stop();
    if (reason !== "duration" && reason !== "quit") print(`physalia dev: ${reason}, stopping`);
    return await stop(0);
  } catch (error) {
    print(`physalia dev: ${errorText(error)}`);
    for (const line of colony.startupErrors()) print(`  ${line}`);
    return await stop(1);
  }
}

/** Reads game-day commands typed into dev's terminal (nothing when there is none); returns how to stop reading. */
function readConsole(colony: DevColony, print: (line: string) => void, quit: () => void): () => void {
  if (!process.stdin.isTTY) return () => {};
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    const [command, node] = line.trim().split(/\s+/);
    if (command === undefined || command === "") return;
    if (command === "quit" || command === "exit") {
      lines.close();
      quit();
      return;
    }
    if (command === "help") {
      print("commands: kill|pause|resume|restart|partition|heal NODE, status, quit");
      return;
    }
    void colony.command(command, node ?? "").then((answer) => print(answer.ok ? answer.message : `! ${answer.message}`));
  });
  return () => lines.close();
}

/** A temporary colony left by a dev that was killed outright: its DEV.LOCK is free. */
function removeAbandonedColonies(print: (line: string) => void): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir()).filter((n) => n.startsWith("physalia-dev-") && !n.endsWith(".json"));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = join(tmpdir(), name);
    if (!existsSync(join(dir, "DEV.LOCK"))) continue;
    void runtime.lockFile(join(dir, "DEV.LOCK")).then((lock) => {
      if (lock === null) return; // Its dev still runs.
      lock.release();
      rmSync(dir, { recursive: true, force: true });
      print(`physalia dev: removed ${dir}, left by a dev colony that was killed`);
    }, () => {});
  }
}

type NodeState = "starting" | "running" | "paused" | "isolated" | "killed" | "exited";

interface DevNode {
  /** A node process, or a control-plane process (`physalia control`). */
  readonly kind: "node" | "control";
  readonly id: string;
  readonly color: string;
  readonly metricsPort: number;
  child: ChildProcess | null;
  state: NodeState;
  generation: number;
  /** Set while dev itself stops or kills the node, so its exit is not reported as a death. */
  expectingExit: boolean;
}

class DevColony {
  private readonly nodes: DevNode[];
  /** Off during start-up (a start-up death fails the start); on once the colony serves. */
  reportDeaths = false;

  constructor(
    private readonly dir: string,
    private readonly topologyPath: string,
    private readonly keysDir: string,
    nodes: readonly { id: string; color: string; metricsPort: number }[],
    private readonly print: (line: string) => void,
    controls = 0,
  ) {
    this.nodes = nodes.map((n) => ({ ...n, kind: "node" as const, child: null, state: "starting" as const, generation: 0, expectingExit: false }));
    const color = nodes[0]?.color ?? "blue";
    for (let k = 1; k <= controls; k++) this.nodes.push({ kind: "control", id: `control-${k}`, color, metricsPort: 0, child: null, state: "starting", generation: 0, expectingExit: false });
  }

  private logPath(node: DevNode, kind: "log" | "err"): string {
    return join(this.dir, `${node.id}${node.generation > 1 ? `.${node.generation}` : ""}.${kind}`);
  }

  private start(node: DevNode): void {
    node.generation++;
    node.expectingExit = false;
    node.state = "starting";
    const command = node.kind === "control"
      ? ["control", "--topology", this.topologyPath, "--id", node.id, "--color", node.color, "--keys", join(this.keysDir, "control.json"), "--grace", String(devGraceMs), "--exit-with-parent"]
      : ["node", "--topology", this.topologyPath, "--id", node.id, "--data", join(this.dir, node.id),
        "--keys", join(this.keysDir, nodeKeyFileName(node.color)), "--metrics", `127.0.0.1:${node.metricsPort}`, "--exit-with-parent", "--game-day"];
    const child = runtime.spawn([...selfCommand(), ...command], { stdoutPath: this.logPath(node, "log"), stderrPath: this.logPath(node, "err") });
    node.child = child;
    void child.exited.then((code) => {
      if (node.child !== child) return;
      node.child = null;
      const expected = node.expectingExit;
      node.state = node.state === "killed" ? "killed" : "exited";
      if (expected || !this.reportDeaths) return;
      const cause = lastLine(this.logPath(node, "err"));
      this.print(`physalia dev: node ${node.id} died (exit status ${code}${code > 128 ? `, signal ${code - 128}` : ""})${cause === null ? "" : `: ${cause}`}; the colony keeps serving; "restart ${node.id}" starts it again`);
    });
  }

  startAll(): void {
    for (const node of this.nodes) if (node.kind === "node") this.start(node);
  }

  /** Starts the control-plane processes, once the nodes serve (they need the control cell). */
  startControl(): string[] {
    const started = this.nodes.filter((n) => n.kind === "control");
    for (const node of started) {
      this.start(node);
      node.state = "running";
    }
    return started.map((n) => n.id);
  }

  async waitUntilServing(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (const node of this.nodes) {
      if (node.kind !== "node") continue;
      for (;;) {
        if (node.child === null) throw new CliError(`node ${node.id} exited during start-up`);
        if (await this.ready(node)) break;
        if (performance.now() > deadline) throw new CliError(`node ${node.id} did not start within ${timeoutMs / 1000} s`);
        await runtime.sleep(50);
      }
      node.state = "running";
    }
  }

  private async ready(node: DevNode): Promise<boolean> {
    try {
      return (await fetch(`http://127.0.0.1:${node.metricsPort}/status`, { signal: AbortSignal.timeout(1_000) })).ok;
    } catch {
      return false;
    }
  }

  /** The last line each node wrote to stderr, for nodes that wrote one: why a start failed. */
  startupErrors(): string[] {
    return this.nodes.flatMap((node) => {
      const line = lastLine(this.logPath(node, "err"));
      return line === null ? [] : [`${node.id}: ${line}`];
    });
  }

  async command(command: string, id: string): Promise<{ ok: boolean; message: string }> {
    if (command === "status") return { ok: true, message: this.nodes.map((n) => `${n.id} ${n.state}${n.child === null ? "" : ` (pid ${n.child.pid})`}`).join("\n") };
    if (!(gameDayCommands as readonly string[]).includes(command)) return { ok: false, message: `unknown command ${quote(command)}: kill, pause, resume, restart, partition, heal NODE (kill, pause, resume, restart control-K), or status` };
    const node = this.nodes.find((n) => n.id === id);
    if (node === undefined) return { ok: false, message: `no node ${quote(id)}: the nodes are ${this.nodes.map((n) => n.id).join(", ")}` };
    return this.apply(command as GameDayCommand, node);
  }

  private async apply(command: GameDayCommand, node: DevNode): Promise<{ ok: boolean; message: string }> {
    const child = node.child;
    if (node.kind === "control" && (command === "partition" || command === "heal")) {
      return { ok: false, message: `${command} is for nodes; a control process is stopped with kill or pause` };
    }
    if (command === "restart") {
      if (child !== null) {
        node.expectingExit = true;
        child.kill("SIGCONT");
        child.kill("SIGTERM");
        await child.exited;
      }
      this.start(node);
      if (node.kind === "control") {
        // A control process has no status port: it is up once started, and stands by.
        node.state = "running";
        return { ok: true, message: `restarted ${node.id} (pid ${node.child?.pid}); it stands by until it holds the control lease` };
      }
      const deadline = performance.now() + 15_000;
      while (!(await this.ready(node))) {
        if (node.child === null) return { ok: false, message: `node ${node.id} exited while restarting: ${lastLine(this.logPath(node, "err")) ?? "see its log"}` };
        if (performance.now() > deadline) return { ok: false, message: `node ${node.id} did not come back within 15 s` };
        await runtime.sleep(50);
      }
      node.state = "running";
      return { ok: true, message: `restarted ${node.id} on its data (pid ${node.child?.pid})` };
    }
    if (child === null) return { ok: false, message: `node ${node.id} is not running (${node.state}); restart ${node.id} starts it` };
    switch (command) {
      case "kill":
        node.expectingExit = true;
        node.state = "killed";
        child.kill("SIGKILL");
        await child.exited;
        return { ok: true, message: `killed ${node.id} (kill -9); its data is kept: restart ${node.id} brings it back` };
      case "pause":
        child.kill("SIGSTOP");
        node.state = "paused";
        return { ok: true, message: `paused ${node.id} (SIGSTOP): it holds its sockets but answers nothing; resume ${node.id}` };
      case "resume":
        child.kill("SIGCONT");
        node.state = "running";
        return { ok: true, message: `resumed ${node.id}` };
      case "partition":
      case "heal": {
        const path = command === "partition" ? "isolate" : "heal";
        try {
          const response = await fetch(`http://127.0.0.1:${node.metricsPort}/game-day/${path}`, { method: "POST", signal: AbortSignal.timeout(2_000) });
          if (!response.ok) return { ok: false, message: `node ${node.id} refused: ${response.status}` };
        } catch (error) {
          return { ok: false, message: `cannot reach node ${node.id} (${node.state}): ${errorText(error)}` };
        }
        node.state = command === "partition" ? "isolated" : "running";
        return { ok: true, message: command === "partition" ? `cut ${node.id} off from every peer and client; heal ${node.id} joins it again` : `healed ${node.id}` };
      }
    }
  }

  async stopAll(): Promise<void> {
    for (const node of this.nodes) {
      node.expectingExit = true;
      node.child?.kill("SIGCONT");
      node.child?.kill("SIGTERM");
    }
    await Promise.race([Promise.all(this.nodes.map((n) => n.child?.exited)), runtime.sleep(5_000)]);
    this.killAll();
  }

  /** Synchronous, for the last moment of an ending process. */
  killAll(): void {
    for (const node of this.nodes) {
      node.expectingExit = true;
      node.child?.kill("SIGCONT");
      node.child?.kill("SIGKILL");
    }
  }
}

function lastLine(path: string): string | null {
  try {
    const lines = readFileSync(path, "utf8").trim().split("\n").filter((l) => l.trim() !== "");
    const line = lines.at(-1);
    return line === undefined ? null : line.slice(0, 300);
  } catch {
    return null;
  }
}

/** `physalia dev kill n3`: sends a game-day command to the dev colony running on base port P. */
async function remoteCommand(command: string, args: string[], print: (line: string) => void): Promise<number> {
  const { flags, positional } = ((): { flags: Record<string, unknown>; positional: string[] } => {
    const values = [...args];
    const flagsOut: Record<string, unknown> = {};
    const rest: string[] = [];
    for (let i = 0; i < values.length; i++) {
      const word = values[i] as string;
      if (word === "--base-port" || word.startsWith("--base-port=")) {
        const text = word.includes("=") ? word.slice(word.indexOf("=") + 1) : values[++i];
        const port = Number(text);
        if (text === undefined || !Number.isInteger(port) || port < 1024 || port > 60_000) throw new UsageError(`flag --base-port must be an integer from 1024 to 60000, not ${quote(String(text))}`);
        flagsOut["base-port"] = port;
      } else if (word.startsWith("--")) throw new UsageError(`unknown flag ${quote(word)}`);
      else rest.push(word);
    }
    return { flags: flagsOut, positional: rest };
  })();
  const node = positional[0];
  if (command !== "status" && (node === undefined || positional.length !== 1)) throw new UsageError(`expected: dev ${command} NODE`);
  if (command === "status" && positional.length > 0) throw new UsageError("expected: dev status");
  const basePort = (flags["base-port"] as number | undefined) ?? 7101;
  let state: DevState;
  try {
    state = JSON.parse(readFileSync(statePath(basePort), "utf8")) as DevState;
  } catch {
    throw new CliError(`No dev colony is running on base port ${basePort} (start one with physalia dev${basePort === 7101 ? "" : ` --base-port ${basePort}`})`);
  }
  let answer: { ok: boolean; message: string };
  try {
    const response = await fetch(state.control, { method: "POST", headers: { authorization: `Bearer ${state.token}` }, body: JSON.stringify({ command, node: node ?? "" }), signal: AbortSignal.timeout(30_000) });
    answer = (await response.json()) as { ok: boolean; message: string };
  } catch (error) {
    throw new CliError(`Cannot reach the dev colony on base port ${basePort} (pid ${state.pid}): ${errorText(error)}`);
  }
  if (!answer.ok) throw new CliError(answer.message);
  print(answer.message);
  return 0;
}

/**
 * A steady trickle of increments on the sample cells, each in its own loop, so goodput and
 * latency show on the dashboard and a fault shows as a dip; a failed one is retried by the
 * next. Off with --load 0.
 */
async function startLoad(topologyPath: string, keysPath: string, perSecond: number): Promise<{ stop(): Promise<void> }> {
  if (perSecond === 0) return { stop: async () => {} };
  const topology = await readTopology(topologyPath);
  const { keys } = await readKeys(keysPath, ["control"]);
  const color = topology.colors[0] as string;
  const transport = await openClientLinks(topology, color, keys, { host: "127.0.0.1", port: 0 });
  const client = new PhysaliaClient({ id: `dev-load-${process.pid}`, nodes: colorEndpoints(topology, color), keys, transport, deadlineMs: 3_000 });
  let running = true;
  const cells = ["volume-1", "volume-2", "volume-3"];
  const loops = cells.map(async (cell) => {
    const intervalMs = (1000 * cells.length) / perSecond;
    while (running) {
      const started = performance.now();
      await client.transact(cell, { reads: [], conditions: [], writes: [{ key: "load", op: "increment", by: 1n }] }).catch(() => undefined);
      await runtime.sleep(Math.max(0, intervalMs - (performance.now() - started)));
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.race([Promise.all(loops), runtime.sleep(4_000)]);
      await client.end(300);
    },
  };
}

async function workload(topologyPath: string, keysPath: string, viaControl: boolean, print: (line: string) => void): Promise<number> {
  const topology = await readTopology(topologyPath);
  const { keys } = await readKeys(keysPath, ["control"]);
  const color = topology.colors[0] as string;
  const nodes = colorEndpoints(topology, color);
  const transport = await openClientLinks(topology, color, keys, { host: "127.0.0.1", port: 0 });
  const client = new PhysaliaClient({ id: `dev-${process.pid}`, nodes, keys, transport });
  const show = async (cell: string, what: string, tx: Transaction) => {
    const result = await client.transact(cell, tx);
    print(`  ${cell}: ${what.padEnd(44)} -> ${JSON.stringify(resultToJson(tx, result))}`);
  };
  try {
    for (let v = 1; v <= 3; v++) {
      const cell = `volume-${v}`;
      const created = viaControl ? await createThroughControl(client, color, cell, topology.clients[(v - 1) % topology.clients.length]?.id ?? "i1") : await client.create(cell);
      print(`${created.status === "created" ? "created" : "found existing"} ${cell} on ${created.members.map(nodePart).join(", ")}${viaControl ? " (placed by the control plane)" : ""}`);
      await show(cell, `put primary=server-${v}a, replica=server-${v}b`, { reads: [], conditions: [], writes: [{ key: "primary", op: "put", value: utf8(`server-${v}a`) }, { key: "replica", op: "put", value: utf8(`server-${v}b`) }] });
      await show(cell, "increment epoch", { reads: [], conditions: [], writes: [{ key: "epoch", op: "increment", by: 1n }] });
      await show(cell, "fail over if epoch is still 1", {
        reads: ["primary"], conditions: [{ key: "epoch", test: "equals", value: 1n }],
        writes: [{ key: "primary", op: "put", value: utf8(`server-${v}b`) }, { key: "replica", op: "put", value: utf8(`server-${v}c`) }, { key: "epoch", op: "increment", by: 1n }],
      });
      await show(cell, "the same fail-over again (epoch moved on)", {
        reads: [], conditions: [{ key: "epoch", test: "equals", value: 1n }], writes: [{ key: "primary", op: "put", value: utf8("nobody") }],
      });
      await show(cell, "scan", { reads: [], conditions: [], writes: [], scan: { start: "", limit: 10 } });
    }
    return 0;
  } finally {
    await client.end();
  }
}

/** A cell created by the control plane (which places it and will repair it), as ctl create --client does. */
async function createThroughControl(client: PhysaliaClient, color: string, cell: string, clientId: string): Promise<{ status: string; members: readonly string[] }> {
  // The control processes create their control cell as they start: wait for it.
  const control = controlCellOf(color);
  for (let waitedMs = 0; ; waitedMs += 200) {
    const probe = await client.transact(control, { reads: [], conditions: [], writes: [] }).catch(() => null);
    if (probe?.status === "committed") break;
    if (waitedMs > 20_000) throw new CliError(`The control plane did not create its cell ${control} within 20 s: see the control-*.err logs`);
    await runtime.sleep(200);
  }
  let answer = "";
  const code = await requestCreation(client, color, cell, clientId, (line) => {
    answer = line;
  });
  const parsed = JSON.parse(answer) as { status?: string; members?: string[]; detail?: string };
  if (code !== 0 || !Array.isArray(parsed.members)) {
    const known = await client.describe(cell);
    if (parsed.status === "exists" && known !== null) return { status: "exists", members: known.hosted.members };
    throw new CliError(`The control plane did not create ${cell}: ${parsed.detail ?? answer}`);
  }
  return { status: parsed.status ?? "created", members: parsed.members };
}

function simulated(seed: number, print: (line: string) => void): number {
  const nodes = localTopology.nodes.length;
  print(`physalia dev --simulated: ${nodes} nodes from the embedded topology, in one process over the simulated network`);
  const report = runSimulation({
    ...defaultSimOptions, seed, nodes, cells: 3, members: Math.min(7, nodes), clientsPerCell: 4, opsPerClient: 30,
    faults: new Set(["loss", "duplicate", "reorder", "crash"]), faultMs: 3_000,
  });
  const s = report.stats;
  print(`  ${s.operations} transactions (${s.unknownOutcomes} with unknown outcome), ${s.slotsApplied} slots applied across replicas`);
  print(`  ${s.crashes} node crashes, ${s.framesDropped} of ${s.framesSent} frames dropped, ${s.framesDuplicated} duplicated`);
  print(`  every cell's history linearizable: ${report.ok ? "yes" : "NO"}`);
  for (const failure of report.failures) print(`  ${failure}`);
  return report.ok ? 0 : 1;
}
