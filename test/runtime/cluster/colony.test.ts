// Real node processes on other runtimes and transports: a data-channel colony losing and
// regaining a node, a colony of Bun and Deno nodes mixing UDP and data-channel links in one
// cell, and failed starts that leave nothing behind. Run with `npm run test:runtime-cluster`.

import { afterEach, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { runtime } from "../../../src/runtime/mod.ts";
import { Colony, type NodeSpec, type Runner, commandFor } from "./support.ts";

let colony: Colony | null = null;

const json = (text: string) => JSON.parse(text) as Record<string, unknown>;

describe("colonies on other runtimes and transports", () => {
  afterEach(async () => {
    await colony?.stop();
    colony = null;
  });

  test("a colony of Deno nodes serves ctl run by Deno", async () => {
    colony = await Colony.start(Array.from({ length: 3 }, (): NodeSpec => ({ runner: "deno", transport: "udp" })));
    expect((await colony.ctl("deno", "create", "vol-deno")).code).toBe(0);
    expect(json((await colony.ctl("deno", "cas", "vol-deno", "owner", "null", "me")).out)).toMatchObject({ status: "committed" });
    expect(json((await colony.ctl("deno", "cas", "vol-deno", "owner", "null", "you")).out)).toMatchObject({ status: "conditionFailed" });
    expect(json((await colony.ctl("deno", "get", "vol-deno", "owner")).out)).toEqual({ status: "committed", reads: { owner: { str: "me" } } });
  }, 120_000);

  test("a data-channel colony serves ctl; a SIGKILLed member restarts, reconnects and is needed again", async () => {
    const specs: NodeSpec[] = Array.from({ length: 5 }, () => ({ runner: "binary", transport: "datachannel" }));
    colony = await Colony.start(specs);
    const created = await colony.ctl("binary", "create", "vol-dc");
    expect(created.code).toBe(0);
    const members = (json(created.out).members as string[]).map((m) => m.split("~")[0] as string);
    expect(members.length).toBe(5);
    expect(json((await colony.ctl("binary", "put", "vol-dc", "primary", "server-1")).out)).toEqual({ status: "committed" });

    const [victim, second, third] = members as [string, string, string];
    await colony.kill(victim);
    expect(json((await colony.ctl("binary", "increment", "vol-dc", "epoch")).out)).toMatchObject({ status: "committed" });
    colony.startNode(victim);
    await colony.waitUp(victim);
    // With two other members down, the cell needs the restarted node's vote, over fresh connections.
    await colony.kill(second);
    await colony.kill(third);
    const read = await colony.ctl("binary", "get", "vol-dc", "primary", "epoch");
    expect(read.code).toBe(0);
    expect(json(read.out)).toEqual({ status: "committed", reads: { primary: { str: "server-1" }, epoch: { int: "1" } } });
    expect(await colony.metrics(victim)).toContain("physalia_frames_received_total");
  }, 180_000);

  test("Bun and Deno nodes, over UDP and data channels, replicate one cell; ctl works from both runtimes", async () => {
    const specs: NodeSpec[] = [
      { runner: "binary", transport: "udp" },
      { runner: "deno", transport: "udp" },
      { runner: "bun", transport: "datachannel" },
      { runner: "deno", transport: "datachannel" },
      { runner: "binary", transport: "datachannel" },
    ];
    colony = await Colony.start(specs);
    const created = await colony.ctl("deno", "create", "vol-mixed");
    expect(created.code).toBe(0);
    expect(json(created.out)).toMatchObject({ status: "created", cell: "vol-mixed" });
    expect((json(created.out).members as string[]).length).toBe(5);
    expect(json((await colony.ctl("binary", "put", "vol-mixed", "k", "v1")).out)).toEqual({ status: "committed" });
    expect(json((await colony.ctl("deno", "increment", "vol-mixed", "n", "5")).out)).toMatchObject({ status: "committed", increments: { n: { int: "5" } } });
    // Every node applied the writes: each runtime and each kind of link took part.
    for (const id of colony.ids) {
      const status = await fetch(`http://127.0.0.1:${colony.metricsPort(id)}/status?cell=vol-mixed`).then((r) => r.json() as Promise<Record<string, unknown>>);
      expect(status).toMatchObject({ cell: "vol-mixed" });
    }
    // Two Bun nodes down: the cell needs both Deno nodes (one on each kind of link) and the data-channel Bun node.
    await colony.kill("n1");
    await colony.kill("n5");
    const read = await colony.ctl("bun", "get", "vol-mixed", "k", "n");
    expect(read.code).toBe(0);
    expect(json(read.out)).toEqual({ status: "committed", reads: { k: { str: "v1" }, n: { int: "5" } } });
  }, 180_000);

  test.each<[Runner]>([["binary"], ["deno"]])("a node on %s that cannot bind its ports exits 1 and leaves no data directory", async (runner) => {
    colony = await Colony.create([{ runner, transport: "udp" }, { runner, transport: "datachannel" }]);
    for (const id of colony.ids) {
      // Someone else holds the node's metrics port.
      const squatter = await runtime.serveHttp({ host: "127.0.0.1", port: colony.metricsPort(id) }, () => new Response("not a node"));
      try {
        const child = colony.startNode(id, runner);
        expect(await child.exited).toBe(1);
        expect(colony.stderr(id)).toContain("its metrics port 127.0.0.1:");
        expect(existsSync(colony.dataDir(id))).toBe(false);
      } finally {
        squatter.stop();
      }
    }
    // The same nodes start once the ports are free.
    await runtime.sleep(200);
    for (const id of colony.ids) colony.startNode(id, runner);
    for (const id of colony.ids) await colony.waitUp(id);
    expect(existsSync(colony.dataDir("n1"))).toBe(true);
  }, 120_000);

  test("dev --transport mixed runs the sample workload from the binary", async () => {
    const { mkdtempSync, readFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "physalia-dev-"));
    const basePort = 10_000 + Math.floor(Math.random() * 20_000);
    const child = runtime.spawn([...commandFor("binary"), "dev", "--transport", "mixed", "--duration", "1", "--base-port", String(basePort), "--data", join(dir, "data")], { stdoutPath: join(dir, "out") });
    expect(await child.exited).toBe(0);
    const out = readFileSync(join(dir, "out"), "utf8");
    expect(out).toContain("9 nodes (mixed)");
    expect(out.match(/"status":"committed"/g)?.length).toBe(12);
    expect(out.match(/"status":"conditionFailed"/g)?.length).toBe(3);
  }, 120_000);
});
