// `npm run bench:wire`: what authentication, the role check and the replay guard cost per
// frame, and how fast a node refuses forged chunks. Writes bench/results/wire.json. On a
// shared machine the figures are floors: note the load average printed with them.

import { mkdir, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import type { Envelope } from "../src/core/messages.ts";
import { utf8 } from "../src/core/value.ts";
import { Reassembler, splitFrame } from "../src/transport/chunks.ts";
import { decodeFrame, encodeFrame } from "../src/wire/frame.ts";
import { ReplayGuard, Stamper } from "../src/wire/freshness.ts";
import { KeyRing, KeySet } from "../src/wire/keyring.ts";
import { decodeMessages, encodeMessages } from "../src/wire/message.ts";
import { authorizeAtNode } from "../src/wire/roles.ts";

const secret = (id: number) => Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + id * 13 + 1) & 0xff);
const ring = (id: number, previous?: number) =>
  previous === undefined ? new KeyRing({ id, secret: secret(id) }) : new KeyRing({ id, secret: secret(id) }, { id: previous, secret: secret(previous) });
const node = new KeySet({ node: ring(10), client: ring(1), control: ring(2) }, "blue");
const colors = new Map([["n1", "blue"], ["n2", "blue"]]);
const facts = { color: "blue", colorOf: (id: string) => colors.get(id) };

/** Runs `body` for about `ms` milliseconds and returns calls per second. */
function rate(body: () => void, ms = 1_000): number {
  for (let i = 0; i < 1_000; i++) body();
  let calls = 0;
  const started = performance.now();
  while (performance.now() - started < ms) {
    for (let i = 0; i < 100; i++) body();
    calls += 100;
  }
  return Math.round(calls / ((performance.now() - started) / 1000));
}

const request: Envelope[] = [{
  cell: "volume-1",
  message: { kind: "request", client: "app", id: 7, session: 64, seq: 7, acked: 7, op: { kind: "tx", tx: { reads: [], conditions: [], writes: [{ key: "primary", op: "put", value: utf8("server-17") }] } }, consistency: "consistent", minApplied: 0, force: false },
}];
const stamper = new Stamper(1);
const signed = (r: KeyRing) => encodeMessages(r, { sender: "app", receiver: "n1", stamp: stamper.next(), messages: request });
const clientRing = ring(1);
const rotatingRing = ring(1, 3);
const small = signed(clientRing);
const rotating = signed(rotatingRing);
const rotatingReceiver = new KeySet({ node: ring(10), client: ring(1, 3), control: ring(2) }, "blue");

const results: Record<string, unknown> = {
  when: new Date().toISOString(),
  machine: { cores: cpus().length, model: cpus()[0]?.model ?? "unknown", bun: Bun.version, loadAverage: loadavg()[0] },
  frameBytes: { request: small.length, requestWhileRotating: rotating.length },
  perSecond: {
    signRequest: rate(() => signed(clientRing)),
    signRequestWhileRotating: rate(() => signed(rotatingRing)),
    verifyAndDecodeRequest: rate(() => decodeMessages(small, node, { receiver: "n1" })),
    verifyRequestWhileRotating: rate(() => decodeMessages(rotating, rotatingReceiver, { receiver: "n1" })),
    roleCheck: (() => {
      const decoded = decodeMessages(small, node);
      if (!decoded.ok) throw new Error("bench frame does not decode");
      return rate(() => authorizeAtNode({ role: "client", sender: "app", messages: decoded.messages }, facts));
    })(),
    replayGuardAdmit: (() => {
      const guard = new ReplayGuard();
      let counter = 0;
      return rate(() => guard.admit(`c${counter % 5_000}`, { epoch: 1, counter: ++counter }, false));
    })(),
    refuseForgedChunk: (() => {
      const forged = encodeFrame(new KeyRing({ id: 10, secret: secret(99) }), { kind: "chunk", sender: "n2", receiver: "n1", stamp: stamper.next(), body: new Uint8Array(200) });
      return rate(() => decodeFrame(forged, node, { receiver: "n1" }));
    })(),
    reassembleSnapshotOf300KB: (() => {
      const whole = new Uint8Array(300_000);
      const chunks = splitFrame(whole, { ring: ring(10), sender: "n2", receiver: "n1", stamper, messageId: 1 });
      const bodies = chunks.map((c) => {
        const d = decodeFrame(c, node);
        if (!d.ok) throw new Error("bench chunk does not decode");
        return d.frame.body;
      });
      let id = 0;
      return rate(() => {
        const reassembler = new Reassembler();
        id++;
        for (const body of bodies) {
          const copy = body.slice();
          new DataView(copy.buffer).setUint32(0, id);
          reassembler.add("n2", copy, 0);
        }
      }, 500);
    })(),
  },
};
console.log(JSON.stringify(results, null, 2));
await mkdir(join(import.meta.dir, "results"), { recursive: true });
await writeFile(join(import.meta.dir, "results/wire.json"), `${JSON.stringify(results, null, 2)}\n`);
console.log("wrote bench/results/wire.json");
