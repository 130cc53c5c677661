// `npm run bench:runtime`: what the runtime and the transport cost, on this machine.
//   - a 200-byte ping-pong on loopback over src/transport's UDP and data channels, on the
//     runtime running this file (run it with both: bun bench/runtime/transports.ts and
//     deno run -A bench/runtime/transports.ts);
//   - under Bun only: how long `physalia --version` takes to start and exit, for the compiled
//     binary, Bun from sources and Deno from sources, and the binary's size.
// Merges its figures into bench/results/runtime.json under the runtime's name.

import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { runtime } from "../../src/runtime/mod.ts";
import { openDatachannel } from "../../src/transport/datachannel.ts";
import type { Endpoint, Transport } from "../../src/transport/transport.ts";
import { openUdp } from "../../src/transport/udp.ts";
import { KeyRing } from "../../src/wire/keyring.ts";

const root = join(import.meta.dirname ?? ".", "../..");
const rounds = 10_000;
const warm = 1_000;
const keyring = new KeyRing({ id: 1, secret: new Uint8Array(32).fill(3) });
const round = (x: number) => Math.round(x * 10) / 10;

async function pingPong(a: Transport, b: Transport, to: Endpoint): Promise<{ p50Us: number; p99Us: number }> {
  b.onReceive((bytes, from) => b.send(bytes, from));
  let wake: () => void = () => {};
  a.onReceive(() => wake());
  const payload = new Uint8Array(200).fill(1);
  const samples: number[] = [];
  for (let i = 0; i < warm + rounds; i++) {
    const started = performance.now();
    // One datagram in flight on loopback is not lost; no timer runs meanwhile (a pending
    // timer changes how fast Bun wakes for the addon's callbacks, so it would skew the figure).
    await new Promise<void>((resolve) => {
      wake = resolve;
      a.send(payload, to);
    });
    if (i >= warm) samples.push((performance.now() - started) * 1000);
  }
  samples.sort((x, y) => x - y);
  return { p50Us: round(samples[Math.floor(samples.length / 2)] as number), p99Us: round(samples[Math.floor(samples.length * 0.99)] as number) };
}

const port = 40_000 + Math.floor(Math.random() * 10_000);
const udpA = await openUdp({ host: "127.0.0.1", port: 0 });
const udpB = await openUdp({ host: "127.0.0.1", port: 0 });
const udp = await pingPong(udpA, udpB, udpB.local);
udpA.close();
udpB.close();
const eb = { host: "127.0.0.1", port };
const dcB = await openDatachannel({ keyring, local: eb, answer: true });
const dcA = await openDatachannel({ keyring });
dcA.addPeers([eb]);
const openStarted = performance.now();
await new Promise<void>((resolve) => {
  dcB.onReceive((bytes, from) => dcB.send(bytes, from));
  const retry = setInterval(() => dcA.send(new Uint8Array(1), eb), 20);
  dcA.onReceive(() => {
    clearInterval(retry);
    resolve();
  });
  dcA.send(new Uint8Array(1), eb);
});
const connectMs = round(performance.now() - openStarted);
// The datagrams queued while the channel opened are echoed too: let them drain, or every
// round would be woken by an earlier round's echo.
dcA.onReceive(() => {});
await runtime.sleep(500);
const datachannel = await pingPong(dcA, dcB, eb);
dcA.close();
dcB.close();
console.log(`${runtime.name} ${runtime.version}: udp ${JSON.stringify(udp)}, datachannel ${JSON.stringify(datachannel)}, first datagram over a new data channel after ${connectMs} ms`);

const results: Record<string, unknown> = {};
results[runtime.name] = { version: runtime.version, roundTrip200Bytes: { udp, datachannel }, datachannelConnectMs: connectMs };

if (runtime.name === "bun") {
  const startMs = async (argv: string[]) => {
    const times: number[] = [];
    for (let i = 0; i < 7; i++) {
      const started = performance.now();
      const child = runtime.spawn(argv);
      if ((await child.exited) !== 0) throw new Error(`${argv.join(" ")} failed`);
      times.push(performance.now() - started);
    }
    times.sort((x, y) => x - y);
    return round(times[3] as number);
  };
  const main = join(root, "src/cli/main.ts");
  const binary = join(root, "dist/physalia");
  const start = {
    binaryMs: existsSync(binary) ? await startMs([binary, "--version"]) : null,
    bunSourcesMs: await startMs([process.execPath, main, "--version"]),
    denoSourcesMs: await startMs([join(root, "node_modules/.bin/deno"), "run", "-A", "--unstable-net", main, "--version"]),
  };
  console.log(`start and exit (median of 7): ${JSON.stringify(start)}`);
  results.startup = start;
  results.binaryBytes = existsSync(binary) ? statSync(binary).size : null;
}

const path = join(root, "bench/results/runtime.json");
const previous = existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>) : {};
const merged = { ...previous, ...results, when: new Date().toISOString(), machine: { cores: cpus().length, model: cpus()[0]?.model ?? "unknown" } };
writeFileSync(path, `${JSON.stringify(merged, null, 2)}\n`);
console.log("wrote bench/results/runtime.json");
