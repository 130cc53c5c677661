import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Reassembler, chunkPayloadBytes, isChunk, splitFrame } from "../../src/transport/chunks.ts";
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

describe("chunks", () => {
  test("a frame split into chunks reassembles in any order, with duplicates", () => {
    fc.assert(
      fc.property(fc.integer({ min: chunkPayloadBytes + 1, max: 5 * chunkPayloadBytes }), fc.nat(), (size, seed) => {
        const frame = new Uint8Array(size).map((_, i) => (i * 31 + seed) & 0xff);
        const chunks = splitFrame(frame, seed);
        expect(chunks.every(isChunk)).toBe(true);
        // Any order, and a duplicate of one chunk before the last one arrives.
        const shuffled = [...chunks].sort((a, b) => ((a[8] as number) ^ seed) - ((b[8] as number) ^ seed));
        const order = [...shuffled.slice(0, -1), shuffled[0] as Uint8Array, shuffled[shuffled.length - 1] as Uint8Array];
        const reassembler = new Reassembler();
        let out: Uint8Array | null = null;
        for (const chunk of order) {
          const result = reassembler.add("peer", chunk, 0);
          if (result.kind === "frame") out = result.frame;
          else expect(result.kind).toBe("partial");
        }
        expect(out).toEqual(frame);
        expect(reassembler.pendingMessages).toBe(0);
      }),
      { numRuns: 50 },
    );
  });

  test("reassembly is bounded: too many messages, too many bytes, stale ones expire", () => {
    const frame = new Uint8Array(3 * chunkPayloadBytes);
    const reassembler = new Reassembler({ messagesMax: 2, bytesMax: 3 * chunkPayloadBytes, timeoutMs: 100 });
    expect(reassembler.add("a", splitFrame(frame, 1)[0] as Uint8Array, 0).kind).toBe("partial");
    expect(reassembler.add("a", splitFrame(frame, 2)[0] as Uint8Array, 0).kind).toBe("partial");
    expect(reassembler.add("a", splitFrame(frame, 3)[0] as Uint8Array, 0)).toEqual({ kind: "rejected", reason: "chunkOverflow" });
    expect(reassembler.add("a", splitFrame(frame, 1)[1] as Uint8Array, 0).kind).toBe("partial");
    expect(reassembler.add("a", splitFrame(frame, 2)[1] as Uint8Array, 0)).toEqual({ kind: "rejected", reason: "chunkOverflow" });
    // Time passes: both partial messages expire and make room again.
    expect(reassembler.add("a", splitFrame(frame, 4)[0] as Uint8Array, 1_000).kind).toBe("partial");
    expect(reassembler.pendingMessages).toBe(1);
  });

  test("malformed chunks are rejected, never thrown", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 40 }), (bytes) => {
        const chunk = new Uint8Array([0x50, 0x4b, ...bytes]);
        const result = new Reassembler().add("x", chunk, 0);
        expect(["rejected", "partial"]).toContain(result.kind);
      }),
      { numRuns: 500 },
    );
  });
});
