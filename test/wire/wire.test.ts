import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { KeyRing, parseKeyFile, KeyFileError } from "../../src/wire/keyring.ts";
import { decodeMessages, encodeMessages } from "../../src/wire/message.ts";
import { encodeFrame, decodeFrame } from "../../src/wire/frame.ts";
import { encodeCbor } from "../../src/wire/cbor.ts";
import { limits } from "../../src/limits.ts";
import { canonical, envelopes } from "../support/messages.ts";

const secret = (fill: number) => new Uint8Array(32).fill(fill);
const ring = new KeyRing({ id: 7, secret: secret(1) });
const sign = (messages: Parameters<typeof encodeMessages>[1]["messages"]) => encodeMessages(ring, { sender: "n1", receiver: "n2", messages });

describe("messages on the wire", () => {
  test("every message kind survives a round trip through a signed frame", () => {
    fc.assert(
      fc.property(envelopes, (messages) => {
        const decoded = decodeMessages(sign(messages), ring, { receiver: "n2" });
        expect(decoded.ok).toBe(true);
        if (!decoded.ok) return;
        expect(decoded.sender).toBe("n1");
        expect(canonical(decoded.messages)).toBe(canonical(messages));
      }),
      { numRuns: 500 },
    );
  });

  test("random bytes are always rejected and never throw", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const decoded = decodeMessages(bytes, ring);
        expect(decoded.ok).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  test("random bytes behind a valid header and MAC are rejected by the body decoder", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (body) => {
        const frame = encodeFrame(ring, { sender: "n1", receiver: "n2", body });
        const decoded = decodeMessages(frame, ring);
        expect(decoded.ok).toBe(false);
        if (!decoded.ok) expect(["badCbor", "unsupportedProtocol", "badSchema", "unknownKind"]).toContain(decoded.reason);
      }),
      { numRuns: 2000 },
    );
  });

  test("re-signed but malformed bodies are rejected with a reason, never thrown", () => {
    const junk = fc.oneof(
      fc.anything({ withBigInt: true, withTypedArray: true, withMap: true, withSet: true, withDate: true }),
      fc.record({ v: fc.constant(1), m: fc.array(fc.anything({ withBigInt: true, withTypedArray: true })) }),
      fc.record({ v: fc.constant(1), m: fc.array(fc.record({ c: fc.string(), k: fc.constantFrom("P1a", "P1b", "P2a", "P2b", "NAK", "CMT", "LRN", "TCH", "REQ", "REP", "??"), b: fc.anything({ withBigInt: true }), f: fc.anything({ withBigInt: true }), a: fc.anything(), t: fc.anything(), e: fc.anything(), op: fc.anything(), r: fc.anything() })) }),
      fc.constant({ v: 2, m: [] }),
    );
    fc.assert(
      fc.property(junk, (body) => {
        let bytes: Uint8Array;
        try {
          bytes = encodeCbor(body);
        } catch {
          return; // cbor-x cannot encode this junk at all: nothing to test.
        }
        if (bytes.length > 60_000) return;
        const decoded = decodeMessages(encodeFrame(ring, { sender: "n1", receiver: "n2", body: bytes }), ring);
        if (decoded.ok) {
          // Only an empty message list can be valid here.
          expect(decoded.messages.length).toBe(0);
        } else {
          expect(decoded.detail.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test("truncating a frame anywhere makes it fail", () => {
    fc.assert(
      fc.property(envelopes, fc.nat(), (messages, cut) => {
        const frame = sign(messages);
        const decoded = decodeMessages(frame.subarray(0, cut % frame.length), ring);
        expect(decoded.ok).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  test("a tampered byte anywhere fails authentication or the header checks", () => {
    fc.assert(
      fc.property(envelopes, fc.nat(), fc.integer({ min: 1, max: 255 }), (messages, at, flip) => {
        const frame = sign(messages).slice();
        const i = at % frame.length;
        frame[i]! ^= flip;
        const decoded = decodeMessages(frame, ring);
        expect(decoded.ok).toBe(false);
        if (!decoded.ok) {
          // Before the MAC only the magic, version and key id are read; everything else is covered by it.
          const expected = i < 2 ? "badMagic" : i === 2 ? "unsupportedVersion" : i < 7 ? "unknownKey" : "badMac";
          expect(decoded.reason).toBe(expected);
        }
      }),
      { numRuns: 1000 },
    );
  });

  test("a frame signed with the previous key is accepted during rotation; an unknown key is not", () => {
    const old = new KeyRing({ id: 1, secret: secret(9) });
    const rotated = new KeyRing({ id: 2, secret: secret(8) }, { id: 1, secret: secret(9) });
    const onlyNew = new KeyRing({ id: 2, secret: secret(8) });
    const messages = [{ cell: "vol", message: { kind: "learn" as const, from: 3 } }];
    const fromOld = encodeMessages(old, { sender: "n1", receiver: "n2", messages });
    expect(decodeMessages(fromOld, rotated).ok).toBe(true);
    const afterRotation = decodeMessages(fromOld, onlyNew);
    expect(afterRotation.ok === false && afterRotation.reason).toBe("unknownKey");
    // The rotated ring signs with its current key, which the old ring does not hold.
    const fromRotated = encodeMessages(rotated, { sender: "n1", receiver: "n2", messages });
    expect(decodeMessages(fromRotated, onlyNew).ok).toBe(true);
    const rejectedByOld = decodeMessages(fromRotated, old);
    expect(rejectedByOld.ok === false && rejectedByOld.reason).toBe("unknownKey");
  });

  test("a frame signed with a different secret under the same key id fails the MAC", () => {
    const impostor = new KeyRing({ id: 7, secret: secret(2) });
    const frame = encodeMessages(impostor, { sender: "n1", receiver: "n2", messages: [] });
    const decoded = decodeMessages(frame, ring);
    expect(decoded.ok === false && decoded.reason).toBe("badMac");
  });

  test("a frame for another node is rejected, and oversized frames are refused both ways", () => {
    const frame = sign([]);
    const decoded = decodeFrame(frame, ring, { receiver: "n3" });
    expect(decoded.ok === false && decoded.reason).toBe("wrongReceiver");
    const big = new Uint8Array(limits.frameBytesMax + 1);
    const tooBig = decodeFrame(big, ring);
    expect(tooBig.ok === false && tooBig.reason).toBe("tooLarge");
    expect(() => encodeFrame(ring, { sender: "n1", receiver: "n2", body: big })).toThrow("exceed");
  });
});

describe("the key file", () => {
  const hex = (fill: number) => "ab".repeat(31) + fill.toString(16).padStart(2, "0");

  test("a file with current and previous keys loads and accepts both", () => {
    const parsed = parseKeyFile(JSON.stringify({ version: 1, current: 2, keys: [{ id: 2, secret: hex(2) }, { id: 1, secret: hex(1) }] }));
    expect(parsed).toBeInstanceOf(KeyRing);
    if (!(parsed instanceof KeyRing)) return;
    expect(parsed.currentId).toBe(2);
    expect(parsed.has(1) && parsed.has(2)).toBe(true);
  });

  test("bad key files are refused with a reason", () => {
    const cases: [string, string][] = [
      ["not json", "Cannot parse key file"],
      [JSON.stringify({ version: 2, current: 1, keys: [] }), "unsupported version"],
      [JSON.stringify({ version: 1, current: 1, keys: [] }), "one or two keys"],
      [JSON.stringify({ version: 1, current: 1, keys: [{ id: 1, secret: "abcd" }] }), "32 to 128 bytes"],
      [JSON.stringify({ version: 1, current: 1, keys: [{ id: 1, secret: "zz" }] }), "must be hex"],
      [JSON.stringify({ version: 1, current: 3, keys: [{ id: 1, secret: hex(1) }] }), "names no key"],
      [JSON.stringify({ version: 1, current: 1, keys: [{ id: 1, secret: hex(1) }, { id: 1, secret: hex(2) }] }), "twice"],
      [JSON.stringify({ version: 1, current: 1, keys: [{ id: -1, secret: hex(1) }] }), "integer from 0"],
    ];
    for (const [text, message] of cases) {
      const parsed = parseKeyFile(text);
      expect(parsed).toBeInstanceOf(KeyFileError);
      expect((parsed as KeyFileError).message).toContain(message);
    }
  });
});

test("the CBOR decoder never loads the native extractor, which crashed the process on fuzzed input", async () => {
  await import("../../src/wire/cbor.ts");
  const { isNativeAccelerationEnabled } = await import("cbor-x/decode");
  expect(isNativeAccelerationEnabled).toBe(false);
});
