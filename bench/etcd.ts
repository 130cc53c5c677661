// A local etcd cluster for the comparison bench: N members on loopback, each with its own
// data directory on the same disk as physalia's logs, default durability (every commit is
// fsynced to etcd's WAL), default heartbeat and election timeouts. etcd comes from PATH
// (Debian's `etcd-server` package: `apt-get install -y etcd-server`); nothing here downloads it.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cpuMs, sleep } from "./colony.ts";

export function etcdVersion(): string | null {
  const result = spawnSync("etcd", ["--version"], { encoding: "utf8" });
  if (result.error !== undefined || result.status !== 0) return null;
  return /etcd Version: (\S+)/.exec(result.stdout)?.[1] ?? "unknown";
}

export class EtcdCluster {
  readonly children: ChildProcess[] = [];
  private constructor(
    readonly members: number,
    readonly dir: string,
    readonly clientUrls: readonly string[],
  ) {}

  static async start(members: number, basePort: number): Promise<EtcdCluster> {
    const dir = await mkdtemp(join(tmpdir(), `etcd-${members}-`));
    const peerUrl = (i: number) => `http://127.0.0.1:${basePort + 100 + i}`;
    const clientUrls = Array.from({ length: members }, (_, i) => `http://127.0.0.1:${basePort + i}`);
    const cluster = new EtcdCluster(members, dir, clientUrls);
    const initial = Array.from({ length: members }, (_, i) => `m${i + 1}=${peerUrl(i)}`).join(",");
    for (let i = 0; i < members; i++) {
      const child = spawn("etcd", [
        "--name", `m${i + 1}`, "--data-dir", join(dir, `m${i + 1}`),
        "--listen-client-urls", clientUrls[i] as string, "--advertise-client-urls", clientUrls[i] as string,
        "--listen-peer-urls", peerUrl(i), "--initial-advertise-peer-urls", peerUrl(i),
        "--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", `bench-${basePort}`,
        "--logger", "zap", "--log-outputs", "stderr", "--log-level", "error",
      ], { stdio: ["ignore", "ignore", "ignore"] });
      cluster.children.push(child);
    }
    for (let tries = 0; ; tries++) {
      const healthy = await Promise.all(clientUrls.map((url) => fetch(`${url}/health`).then((r) => r.json()).then((b) => (b as { health?: string }).health === "true").catch(() => false)));
      if (healthy.every(Boolean)) break;
      if (tries > 300) {
        await cluster.stop();
        throw new Error(`etcd with ${members} members did not become healthy`);
      }
      await sleep(100);
    }
    return cluster;
  }

  /** The client URL of the member that leads, found through the maintenance status call. */
  async leaderUrl(): Promise<string> {
    for (let tries = 0; tries < 100; tries++) {
      for (const url of this.clientUrls) {
        const status = await fetch(`${url}/v3/maintenance/status`, { method: "POST", body: "{}" }).then((r) => r.json()).catch(() => null) as { leader?: string; header?: { member_id?: string } } | null;
        if (status?.leader !== undefined && status.leader === status.header?.member_id) return url;
      }
      await sleep(100);
    }
    throw new Error("etcd has no leader");
  }

  cpu(): number[] {
    return this.children.map((c) => cpuMs(c.pid ?? 0));
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }));
    await rm(this.dir, { recursive: true, force: true });
  }
}
