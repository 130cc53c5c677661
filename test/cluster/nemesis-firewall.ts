// Partitions between real node processes on loopback, made with iptables rules matched on
// UDP ports. Every rule lives in one chain of this process's own (PHYN-<pid>), reached by one
// jump from INPUT, so healing is flushing the chain and cleaning up is deleting it. Rules
// drop in INPUT, not OUTPUT: a datagram dropped on the way out fails the sender's send()
// with EPERM, which is not what a lost datagram looks like to anyone.
//
// Other engineers share the machine, so nothing here touches a rule it did not add: a chain
// left behind by a test process that died (SIGKILL skips every cleanup) is removed only when
// its pid is gone.

import { spawnSync } from "bun";

const chainPrefix = "PHYN-";

function iptables(...args: string[]): { ok: boolean; err: string } {
  try {
    const run = spawnSync(["iptables", "-w", "5", ...args], { stdout: "ignore", stderr: "pipe" });
    return { ok: run.exitCode === 0, err: run.stderr.toString().trim() };
  } catch (error) {
    return { ok: false, err: error instanceof Error ? error.message : String(error) };
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}

/** Removes one chain and every jump to it from INPUT. */
function removeChain(chain: string): void {
  for (let i = 0; i < 100 && iptables("-D", "INPUT", "-j", chain).ok; i++);
  iptables("-F", chain);
  iptables("-X", chain);
}

/** One direction of a cut: datagrams from `fromPort` to any of `toPorts` are dropped. */
export interface Cut {
  readonly fromPort: number;
  readonly toPorts: readonly number[];
}

export class Firewall {
  private readonly installed = new Map<string, string[]>();
  private closed = false;

  private constructor(readonly chain: string) {}

  /**
   * The firewall, or why there is none (no iptables, not root, no netfilter). Chains of
   * test processes that died are removed first.
   */
  static open(): Firewall | string {
    const listed = (() => {
      try {
        return spawnSync(["iptables", "-w", "5", "-S"], { stdout: "pipe", stderr: "pipe" });
      } catch (error) {
        return error instanceof Error ? error.message : String(error);
      }
    })();
    if (typeof listed === "string") return `iptables cannot be run: ${listed}`;
    if (listed.exitCode !== 0) return `iptables -S failed: ${listed.stderr.toString().trim().split("\n").pop() ?? ""}`;
    for (const line of listed.stdout.toString().split("\n")) {
      const match = /^-N (PHYN-(\d+))$/.exec(line.trim());
      if (match !== null && !alive(Number(match[2]))) removeChain(match[1] as string);
    }
    const chain = `${chainPrefix}${process.pid}`;
    removeChain(chain);
    const created = iptables("-N", chain);
    if (!created.ok) return `cannot create chain ${chain}: ${created.err}`;
    const jumped = iptables("-I", "INPUT", "1", "-j", chain);
    if (!jumped.ok) {
      iptables("-X", chain);
      return `cannot jump to chain ${chain}: ${jumped.err}`;
    }
    const firewall = new Firewall(chain);
    // Whatever happens to the test, an exit removes the chain (spawnSync works in "exit"), and
    // so does an interrupt, after which the process exits as it would have.
    process.once("exit", () => firewall.close());
    for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
      process.once(signal, () => {
        firewall.close();
        process.exit(code);
      });
    }
    return firewall;
  }

  /** Installs cuts under a name (one fault), to be lifted together by `lift(name)`. */
  cut(name: string, cuts: readonly Cut[]): void {
    if (this.closed) throw new Error("the firewall is closed");
    if (this.installed.has(name)) throw new Error(`cuts named ${name} are installed already`);
    const specs: string[] = [];
    this.installed.set(name, specs);
    for (const { fromPort, toPorts } of cuts) {
      if (toPorts.length === 0) continue;
      // multiport takes at most 15 ports per rule.
      for (let i = 0; i < toPorts.length; i += 15) {
        const spec = ["-p", "udp", "-s", "127.0.0.1", "-d", "127.0.0.1", "--sport", String(fromPort), "-m", "multiport", "--dports", toPorts.slice(i, i + 15).join(","), "-j", "DROP"];
        const added = iptables("-A", this.chain, ...spec);
        if (!added.ok) throw new Error(`iptables -A ${spec.join(" ")} failed: ${added.err}`);
        specs.push(JSON.stringify(spec));
      }
    }
  }

  /** Lifts the cuts installed under `name`. */
  lift(name: string): void {
    for (const spec of this.installed.get(name) ?? []) iptables("-D", this.chain, ...(JSON.parse(spec) as string[]));
    this.installed.delete(name);
  }

  /** Names of the faults whose cuts are installed. */
  get active(): string[] {
    return [...this.installed.keys()];
  }

  /** How many rules the chain holds now, as iptables reports it. */
  rules(): number {
    const listed = spawnSync(["iptables", "-w", "5", "-S", this.chain], { stdout: "pipe", stderr: "ignore" });
    return listed.stdout.toString().split("\n").filter((l) => l.startsWith("-A ")).length;
  }

  /** Lifts every cut. */
  heal(): void {
    iptables("-F", this.chain);
    this.installed.clear();
  }

  /** Heals and removes the chain. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.installed.clear();
    removeChain(this.chain);
  }
}

/** Cuts both ways between every port of `a` and every port of `b`. */
export function split(a: readonly number[], b: readonly number[]): Cut[] {
  return [...a.map((fromPort) => ({ fromPort, toPorts: b })), ...b.map((fromPort) => ({ fromPort, toPorts: a }))];
}

/** Whether the chain `chain` exists now. */
export function chainExists(chain: string): boolean {
  return iptables("-S", chain).ok;
}
