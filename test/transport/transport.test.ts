import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Reassembler, chunkPayloadBytes, defaultReassemblerLimits, splitFrame } from "../../src/transport/chunks.ts";
import { decodeFrame, isChunk } from "../../src/wire/frame.ts";
import { Stamper } from "../../src/wire/freshness.ts";
import { testKeys } from "../support/keys.ts";
import { openUdp } from "../../src/transport/udp.ts";

describe("UDP", () => {
  test("a send to a dead port never costs the next datagram to a live peer (regression: ECONNREFUSED)", async () => {
    const sender = await openUdp({ host: "127.0.0.1", port: 0 });
    const receiver = await openUdp({ host: "127.0.0.1", port: 0 });
    const dead = await openUdp({ host: "127.0.0.1", port: 0 });
    const deadPort = dead.local.port;
    dead.close();
    let received = 0;
    receiver.onReceive(() => received++);
    const rounds = 100;
    for (let i = 0; i < rounds; i++) {
      sender.send(new Uint8Array([1]), { host: "127.0.0.1", port: deadPort });
      sender.send(new Uint8Array([2]), receiver.local);
      if (i % 10 === 0) await Bun.sleep(1);
    }
    for (let i = 0; i < 50 && received < rounds; i++) await Bun.sleep(10);
    sender.close();
    receiver.close();
    expect(received).toBe(rounds);
  });

  test("a port already in use is a clear error", async () => {
    const first = await openUdp({ host: "127.0.0.1", port: 0 });
    await expect(openUdp({ host: "127.0.0.1", port: first.local.port })).rejects.toThrow(/Cannot listen on udp 127\.0\.0\.1:/);
    first.close();
  });
});

const keys = testKeys();
const split = (frame: Uint8Array, messageId: number, sender = "n1") =>
  splitFrame(frame, { ring: keys.rings.node, sender, receiver: "n2", stamper: new Stamper(1), messageId });
/** The authenticated body of a chunk, as a receiver hands it to the reassembler. */
const bodyOf = (chunk: Uint8Array): Uint8Array => {
  const decoded = decodeFrame(chunk, keys.node, { receiver: "n2" });
  if (!decoded.ok || decoded.frame.kind !== "chunk") throw new Error("not an authentic chunk");
  return decoded.frame.body;
};

describe("chunks", () => {
  test("a frame split into signed chunks reassembles in any order, with duplicates", () => {
    fc.assert(
      fc.property(fc.integer({ min: chunkPayloadBytes + 1, max: 5 * chunkPayloadBytes }), fc.nat(), (size, seed) => {
        const frame = new Uint8Array(size).map((_, i) => (i * 31 + seed) & 0xff);
        const chunks = split(frame, seed);
        expect(chunks.every((c) => isChunk(c) && c.length <= 65_000)).toBe(true);
        // Any order, and a duplicate of one chunk before the last one arrives.
        const shuffled = [...chunks].sort((a, b) => ((a[a.length - 1] as number) ^ seed) - ((b[b.length - 1] as number) ^ seed));
        const order = [...shuffled.slice(0, -1), shuffled[0] as Uint8Array, shuffled[shuffled.length - 1] as Uint8Array];
        const reassembler = new Reassembler();
        let out: Uint8Array | null = null;
        for (const chunk of order) {
          const result = reassembler.add("n1", bodyOf(chunk), 0);
          if (result.kind === "frame") out = result.frame;
          else expect(result.kind).toBe("partial");
        }
        expect(out).toEqual(frame);
        expect(reassembler.pendingMessages).toBe(0);
        expect(reassembler.pendingBytes).toBe(0);
      }),
      { numRuns: 30 },
    );
  });

  test("every chunk is signed: one flipped byte anywhere and it is refused before reassembly", () => {
    const [chunk] = split(new Uint8Array(2 * chunkPayloadBytes), 9);
    for (const at of [0, 3, 10, 40, 200, (chunk as Uint8Array).length - 1]) {
      const bad = (chunk as Uint8Array).slice();
      bad[at]! ^= 0x20;
      expect(decodeFrame(bad, keys.node).ok).toBe(false);
    }
  });

  test("reassembly is bounded in messages per sender, in total, and in bytes", () => {
    const frame = new Uint8Array(3 * chunkPayloadBytes);
    const first = (id: number, sender = "a") => bodyOf(split(frame, id, sender)[0] as Uint8Array);
    const reassembler = new Reassembler({ ...defaultReassemblerLimits, messagesMax: 3, messagesPerSenderMax: 2 });
    expect(reassembler.add("a", first(1), 0).kind).toBe("partial");
    expect(reassembler.add("a", first(2), 0).kind).toBe("partial");
    // One sender cannot take the whole table...
    expect(reassembler.add("a", first(3), 0)).toMatchObject({ kind: "rejected", reason: "chunkOverflow" });
    // ...so another still gets in, until the total bound.
    expect(reassembler.add("b", first(1, "b"), 0).kind).toBe("partial");
    expect(reassembler.add("c", first(1, "c"), 0)).toMatchObject({ kind: "rejected", reason: "chunkOverflow" });
    const tight = new Reassembler({ ...defaultReassemblerLimits, bytesPerSenderMax: chunkPayloadBytes + 10 });
    const chunks = split(frame, 4).map(bodyOf);
    expect(tight.add("a", chunks[0] as Uint8Array, 0).kind).toBe("partial");
    expect(tight.add("a", chunks[1] as Uint8Array, 0)).toMatchObject({ kind: "rejected", reason: "chunkOverflow" });
    expect(tight.add("b", first(5, "b"), 0).kind).toBe("partial");
  });

  test("a slow sender's partial message expires on sweep, without another chunk arriving", () => {
    const reassembler = new Reassembler({ ...defaultReassemblerLimits, timeoutMs: 100 });
    const chunks = split(new Uint8Array(2 * chunkPayloadBytes), 1).map(bodyOf);
    expect(reassembler.add("slow", chunks[0] as Uint8Array, 0).kind).toBe("partial");
    reassembler.sweep(50);
    expect(reassembler.pendingMessages).toBe(1);
    reassembler.sweep(101);
    expect(reassembler.pendingMessages).toBe(0);
    expect(reassembler.pendingBytes).toBe(0);
    expect(reassembler.expired).toBe(1);
    // The rest arriving later starts over and never completes the expired message.
    expect(reassembler.add("slow", chunks[1] as Uint8Array, 102).kind).toBe("partial");
  });

  test("malformed chunk bodies are rejected, never thrown", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 40 }), (body) => {
        const result = new Reassembler().add("x", body, 0);
        expect(["rejected", "partial"]).toContain(result.kind);
      }),
      { numRuns: 500 },
    );
  });
});
