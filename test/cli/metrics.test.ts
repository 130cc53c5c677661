// /metrics by Prometheus's conventions (issue 15): checked with a port of the Prometheus
// client's own text parser and with the conventions it does not check itself: HELP and TYPE
// on every family, base units, `_total` counters, `node` and `color` on every physalia
// series, and the figures an operator alerts on.

import { afterEach, describe, expect, test } from "bun:test";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { PhysaliaClient } from "../../src/client/client.ts";
import { MemoryLog } from "../../src/node/log.ts";
import { Metrics, renderProcessMetrics } from "../../src/node/metrics.ts";
import { PhysaliaNode } from "../../src/node/node.ts";
import type { Endpoint } from "../../src/transport/transport.ts";
import { testKeys } from "../support/keys.ts";
import { MemoryNetwork } from "../support/memnet.ts";

const keys = testKeys();
let nodes: PhysaliaNode[] = [];
afterEach(async () => {
  for (const node of nodes) await node.stop();
  nodes = [];
});

/** Checks the exposition line by line, as a strict scraper would, and returns its families. */
function strictParse(text: string): ReturnType<typeof parsePrometheusTextFormat> {
  const typed = new Map<string, string>();
  const helped = new Set<string>();
  const seen = new Set<string>();
  for (const line of text.trimEnd().split("\n")) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S/.exec(line);
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (help !== null) {
      expect(helped.has(help[1] as string)).toBe(false);
      helped.add(help[1] as string);
      continue;
    }
    if (type !== null) {
      expect(typed.has(type[1] as string)).toBe(false);
      typed.set(type[1] as string, type[2] as string);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$/.exec(line);
    if (sample === null) throw new Error(`not a sample line: ${line}`);
    const name = sample[1] as string;
    const family = [...typed.keys()].find((f) => name === f || (typed.get(f) === "histogram" && [`${f}_bucket`, `${f}_sum`, `${f}_count`].includes(name)));
    if (family === undefined) throw new Error(`${name} has no TYPE before it`);
    expect(helped.has(family)).toBe(true);
    seen.add(family);
  }
  for (const [name, type] of typed) {
    if (type === "counter") expect(name).toEndWith("_total");
    if (/duration|latency|_time/.test(name)) expect(name).toMatch(/_seconds(_total)?$/);
    expect(name).not.toMatch(/_ms$|_milliseconds|_kb$|_mb$/);
  }
  return parsePrometheusTextFormat(text);
}

async function colonyMetrics(): Promise<string> {
  const net = new MemoryNetwork();
  const ids = ["n1", "n2", "n3"];
  const endpoints = new Map<string, Endpoint>(ids.map((id, i) => [id, { host: "127.0.0.1", port: 7900 + i }]));
  nodes = ids.map((id, i) => new PhysaliaNode({
    id: `${id}~000000000000000${i + 1}`, peers: new Map([...endpoints].filter(([other]) => other !== id)), keys: keys.node, log: new MemoryLog(),
    transport: net.open("127.0.0.1", endpoints.get(id)?.port), heartbeatMs: 20, livenessTimeoutMs: 200,
  }));
  for (const node of nodes) node.start();
  const client = new PhysaliaClient({ id: "c1", nodes: endpoints, keys: keys.control, transport: net.open(), deadlineMs: 10_000, membersPerCell: 3 });
  await client.create("vol");
  for (let i = 0; i < 5; i++) await client.transact("vol", { reads: [], conditions: [], writes: [{ key: "n", op: "increment", by: 1n }] });
  // A rejection that depends on state: an increment of a string.
  await client.transact("vol", { reads: [], conditions: [], writes: [{ key: "s", op: "put", value: new Uint8Array([104]) }] });
  await client.transact("vol", { reads: [], conditions: [], writes: [{ key: "s", op: "increment", by: 1n }] });
  await client.end();
  return nodes.map((node) => node.metricsText()).join("");
}

describe("/metrics", () => {
  test("parses, and follows the conventions on every family", async () => {
    await colonyMetrics();
    const leader = nodes.find((node) => node.replica("vol")?.role === "leader");
    if (leader === undefined) throw new Error("no leader");
    const text = `${leader.metricsText()}${renderProcessMetrics(leader.metricLabels, { version: "0.1.0", runtime: "bun", runtimeVersion: "1" }, 12)}`;
    const families = strictParse(text);
    const byName = new Map(families.map((f) => [f.name, f]));
    for (const family of families) {
      // The parser keeps no labels for a histogram's buckets; the line check below covers those.
      if (!family.name.startsWith("physalia_") || family.type === "HISTOGRAM") continue;
      for (const sample of family.metrics) expect(sample.labels ?? {}).toMatchObject({ node: expect.any(String), color: "blue" });
    }
    for (const line of text.split("\n").filter((l) => l.startsWith("physalia_"))) expect(line).toMatch(/node="n\d",color="blue"[,}]/);
    const value = (name: string, labels: Record<string, string> = {}) =>
      Number(byName.get(name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value ?? Number.NaN);
    expect(value("physalia_commits_total")).toBeGreaterThanOrEqual(6);
    expect(value("physalia_rejections_total", { reason: "wrongType" })).toBe(1);
    expect(value("physalia_leader_changes_total", { change: "gained" })).toBe(1);
    expect(value("physalia_elections_total")).toBe(1);
    expect(value("physalia_build_info", { version: "0.1.0", runtime: "bun" })).toBe(1);
    expect(value("process_resident_memory_bytes")).toBeGreaterThan(0);
    for (const name of ["physalia_log_sync_duration_seconds", "physalia_request_duration_seconds"]) {
      const histogram = byName.get(name)?.metrics[0];
      expect(Number(histogram?.buckets?.["+Inf"])).toBeGreaterThan(0);
      const buckets = Object.entries(histogram?.buckets ?? {}).map(([bound, count]) => [Number(bound), Number(count)] as const).sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < buckets.length; i++) expect((buckets[i] as readonly number[])[1]).toBeGreaterThanOrEqual((buckets[i - 1] as readonly number[])[1] as number);
    }
    expect(byName.has("physalia_teach_messages_total")).toBe(true);
  });

  test("label values are escaped", () => {
    const metrics = new Metrics();
    metrics.drop('we"ird\\reason\nx');
    const families = strictParse(metrics.render({ node: "n1", color: "blue" }, []));
    const dropped = families.find((f) => f.name === "physalia_frames_dropped_total");
    expect(dropped?.metrics[0]?.labels?.reason).toBe('we"ird\\reason\nx');
  });

  test("the history gives rates and a p99 per interval", () => {
    const metrics = new Metrics();
    metrics.sample(1_000);
    metrics.commandsCommitted = 20;
    for (let i = 0; i < 99; i++) metrics.requestLatency.observeMs(1);
    metrics.requestLatency.observeMs(400);
    metrics.drop("badMac");
    metrics.sample(3_000);
    expect(metrics.history).toEqual([{ atMs: 3_000, goodputPerSecond: 10, rejectionsPerSecond: 0, droppedPerSecond: 0.5, p99Ms: 1 }]);
  });
});
