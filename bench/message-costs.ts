// `npm run bench:messages`: what one message costs on the wire, piece by piece: the CBOR
// encoding and decoding of its body, the schema check, the frame's header and MAC, and the
// MAC alone under both HMAC implementations (src/wire/hmac.ts), for the messages a committed
// put sends (request, accept, accepted, commit, reply) and the heartbeat. Writes
// bench/results/message-costs.json. Each figure is the median of seven timed runs of about
// 80 ms, so that a neighbour's burst on this shared machine moves one run, not the figure.

import { mkdir, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import type { Envelope } from "../src/core/messages.ts";
import { utf8 } from "../src/core/value.ts";
import { decodeCbor, encodeCbor } from "../src/wire/cbor.ts";
import { decodeFrame, encodeFrame } from "../src/wire/frame.ts";
import { fastestHmac, hmacImplementations, hmacSha256 } from "../src/wire/hmac.ts";
import { KeyRing, KeySet } from "../src/wire/keyring.ts";
import { decodeRecord, encodeRecord } from "../src/wire/records.ts";
import { decodeBody, encodeBody } from "../src/wire/schema.ts";

const secret = (id: number) => Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + id * 13 + 1) & 0xff);
const ring = new KeyRing({ id: 10, secret: secret(10) });
const keys = new KeySet({ node: ring, client: new KeyRing({ id: 1, secret: secret(1) }), control: new KeyRing({ id: 2, secret: secret(2) }) }, "blue");

/** Microseconds per call: the median of seven runs of about `runMs` each, after a warm-up. */
function microseconds(body: () => unknown, runMs = 80): number {
  for (let i = 0; i < 2_000; i++) body();
  const runs: number[] = [];
  for (let run = 0; run < 7; run++) {
    let calls = 0;
    const started = performance.now();
    while (performance.now() - started < runMs) {
      for (let i = 0; i < 50; i++) body();
      calls += 50;
    }
    runs.push(((performance.now() - started) * 1000) / calls);
  }
  runs.sort((a, b) => a - b);
  return Math.round((runs[3] as number) * 100) / 100;
}

const sender = "n1~0123456789abcdef";
const receiver = "n2~0123456789abcdef";
const stamp = { epoch: 1_700_000_000_000, counter: 5 };
const ballot = { round: 3, node: sender };
const op = { kind: "tx" as const, tx: { reads: [], conditions: [], writes: [{ key: "k3", op: "put" as const, value: utf8("v123") }] } };
const value = { kind: "batch" as const, commands: [{ session: 64, seq: 7, acked: 7, op }], stamp: { ballot, time: 123_456 } };
const messages: Record<string, Envelope[]> = {
  request: [{ cell: "bench-0", message: { kind: "request", client: "c64-1-3", id: 7, session: 64, seq: 7, acked: 7, op, consistency: "consistent", minApplied: 0, force: false } }],
  accept: [{ cell: "bench-0", message: { kind: "accept", ballot, slot: 1234, value, chosenThrough: 1232 } }],
  accepted: [{ cell: "bench-0", message: { kind: "accepted", ballot, slot: 1234 } }],
  commit: [{ cell: "bench-0", message: { kind: "commit", ballot, through: 1234 } }],
  reply: [{ cell: "bench-0", message: { kind: "reply", client: "c64-1-3", id: 7, outcome: { kind: "done", slot: 1234, result: { status: "committed", reads: [], increments: [] } } } }],
  heartbeat: [],
};

const perMessage: Record<string, unknown> = {};
for (const [name, envelopes] of Object.entries(messages)) {
  const body = encodeBody(envelopes);
  const frame = encodeFrame(ring, { sender, receiver, stamp, body });
  const raw = decodeCbor(body);
  if (!raw.ok) throw new Error(`the ${name} body does not decode`);
  perMessage[name] = {
    bodyBytes: body.length,
    frameBytes: frame.length,
    us: {
      encodeBody: microseconds(() => encodeBody(envelopes)),
      cborEncodeOnly: microseconds(() => encodeCbor(raw.value)),
      cborDecodeOnly: microseconds(() => decodeCbor(body)),
      decodeBody: microseconds(() => decodeBody(body)),
      encodeFrame: microseconds(() => encodeFrame(ring, { sender, receiver, stamp, body })),
      decodeFrame: microseconds(() => decodeFrame(frame, keys)),
    },
  };
}

const hmacUs: Record<string, Record<string, number>> = {};
for (const bytes of [100, 200, 1400]) {
  const input = new Uint8Array(bytes).fill(0xa5);
  hmacUs[`${bytes}B`] = Object.fromEntries(hmacImplementations.map((implementation) => {
    const mac = hmacSha256(secret(10), implementation);
    return [implementation, microseconds(() => mac(input))];
  }));
}

const record = { cell: "bench-0", record: { kind: "accept" as const, slot: 1234, ballot, value } };
const recordBytes = encodeRecord(record);
const results = {
  when: new Date().toISOString(),
  machine: { cores: cpus().length, model: cpus()[0]?.model ?? "unknown", runtime: `bun ${Bun.version}`, loadAverage: loadavg()[0] },
  note: "microseconds per call, median of 7 runs; the machine was shared (see loadAverage)",
  hmacChosen: fastestHmac(),
  hmacUs,
  perMessage,
  acceptRecord: { bytes: recordBytes.length, us: { encodeRecord: microseconds(() => encodeRecord(record)), decodeRecord: microseconds(() => decodeRecord(recordBytes)) } },
};
console.log(JSON.stringify(results, null, 2));
await mkdir(join(import.meta.dir, "results"), { recursive: true });
await writeFile(join(import.meta.dir, "results/message-costs.json"), `${JSON.stringify(results, null, 2)}\n`);
console.log("wrote bench/results/message-costs.json");
