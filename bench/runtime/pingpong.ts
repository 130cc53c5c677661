// A 200-byte UDP ping-pong on loopback, to choose each runtime's datagram API: run it as
//   bun bench/runtime/pingpong.ts bun|dgram        deno run -A --unstable-net bench/runtime/pingpong.ts deno|dgram
// It prints one JSON line: the runtime, the API and the median and p99 round trip in microseconds.
// It names the runtimes' globals directly on purpose: it measures them, before src/runtime chooses.

import * as dgram from "node:dgram";

const roundsWarm = 2_000;
const rounds = 20_000;
const payload = new Uint8Array(200).fill(7);
type Echo = { send(bytes: Uint8Array): void; close(): void };

const g = globalThis as unknown as Record<string, any>;
const runtimeName = g.Deno !== undefined ? "deno" : g.Bun !== undefined ? "bun" : "node";
const api = process.argv[2] ?? "dgram";

async function pairDgram(onReply: () => void): Promise<Echo> {
  const server = dgram.createSocket("udp4");
  const client = dgram.createSocket("udp4");
  await new Promise<void>((r) => server.bind(0, "127.0.0.1", () => r()));
  await new Promise<void>((r) => client.bind(0, "127.0.0.1", () => r()));
  const serverPort = server.address().port;
  server.on("message", (msg, rinfo) => server.send(msg, rinfo.port, rinfo.address));
  client.on("message", () => onReply());
  return { send: (b) => client.send(b, serverPort, "127.0.0.1"), close: () => { server.close(); client.close(); } };
}

async function pairBun(onReply: () => void): Promise<Echo> {
  const server = await g.Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data(s: any, d: Uint8Array, port: number, addr: string) { s.send(d, port, addr); } } });
  const client = await g.Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() { onReply(); } } });
  return { send: (b) => client.send(b, server.port, "127.0.0.1"), close: () => { server.close(); client.close(); } };
}

async function pairDeno(onReply: () => void): Promise<Echo> {
  const server = g.Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const client = g.Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  let open = true;
  void (async () => { while (open) { try { const [d, a] = await server.receive(); await server.send(d, a); } catch { return; } } })();
  void (async () => { while (open) { try { await client.receive(); onReply(); } catch { return; } } })();
  const to = { transport: "udp", hostname: "127.0.0.1", port: server.addr.port };
  return { send: (b) => void client.send(b, to), close: () => { open = false; server.close(); client.close(); } };
}

let resolveReply: () => void = () => {};
const echo = await (api === "bun" ? pairBun : api === "deno" ? pairDeno : pairDgram)(() => resolveReply());
const samples: number[] = [];
for (let i = 0; i < roundsWarm + rounds; i++) {
  const started = performance.now();
  await new Promise<void>((r) => { resolveReply = r; echo.send(payload); });
  if (i >= roundsWarm) samples.push((performance.now() - started) * 1000);
}
echo.close();
samples.sort((a, b) => a - b);
const at = (q: number) => Math.round((samples[Math.floor(q * (samples.length - 1))] as number) * 10) / 10;
console.log(JSON.stringify({ runtime: runtimeName, api, rounds, p50Us: at(0.5), p99Us: at(0.99) }));
