import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { KeyRing, KeySet } from "../../src/wire/keyring.ts";
import { decodeMessages, encodeMessages } from "../../src/wire/message.ts";
import { FrameEncodeError, decodeFrame, encodeFrame, frameOverheadBytes } from "../../src/wire/frame.ts";
import { encodeCbor } from "../../src/wire/cbor.ts";
import { decodeBody, encodeBody, protocolVersion } from "../../src/wire/schema.ts";
import { isAddressedTo, isNodeId, isPlainId, nodePart } from "../../src/wire/ids.ts";
import { limits } from "../../src/limits.ts";
import { canonical, envelopes } from "../support/messages.ts";
import { testKeys, testRing, testSecret } from "../support/keys.ts";

const keys = testKeys();
const ring = keys.rings.node;
const stamp = { epoch: 1_700_000_000_000, counter: 42 };
const sign = (messages: Parameters<typeof encodeMessages>[1]["messages"]) => encodeMessages(ring, { sender: "n1", receiver: "n2", stamp, messages });
const frameOf = (body: Uint8Array) => encodeFrame(ring, { sender: "n1", receiver: "n2", stamp, body });

describe("messages on the wire", () => {
  test("every message kind survives a round trip through a signed frame, with its sender, stamp and role", () => {
    fc.assert(
      fc.property(envelopes, (messages) => {
        const decoded = decodeMessages(sign(messages), keys.node, { receiver: "n2" });
        expect(decoded.ok).toBe(true);
        if (!decoded.ok) return;
        expect(decoded.header).toMatchObject({ sender: "n1", receiver: "n2", stamp, role: "node", keyId: 10, kind: "frame" });
        expect(canonical(decoded.messages)).toBe(canonical(messages));
      }),
      { numRuns: 500 },
    );
  });

  test("random bytes are always rejected and never throw", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(decodeMessages(bytes, keys.node).ok).toBe(false);
        // The same behind a valid prefix: magic, version, one MAC, a held key id.
        const prefixed = new Uint8Array([0x50, 0x59, 2, 1, 0, 0, 0, 10, ...bytes]);
        expect(decodeMessages(prefixed, keys.node).ok).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  test("random bytes behind a valid header and MAC are rejected by the body decoder", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (body) => {
        const decoded = decodeMessages(frameOf(body), keys.node);
        expect(decoded.ok).toBe(false);
        if (!decoded.ok) expect(["badCbor", "unsupportedProtocol", "badSchema", "unknownKind"]).toContain(decoded.reason);
      }),
      { numRuns: 2000 },
    );
  });

  test("re-signed but malformed bodies are rejected with a reason, never thrown", () => {
    const junk = fc.oneof(
      fc.anything({ withBigInt: true, withTypedArray: true, withMap: true, withSet: true, withDate: true }),
      fc.record({ v: fc.constant(protocolVersion), m: fc.array(fc.anything({ withBigInt: true, withTypedArray: true })) }),
      fc.record({ v: fc.constant(protocolVersion), m: fc.array(fc.record({ c: fc.string(), k: fc.constantFrom("P1a", "P1b", "P2a", "P2b", "NAK", "CMT", "LRN", "TCH", "REQ", "REP", "??"), b: fc.anything({ withBigInt: true }), f: fc.anything({ withBigInt: true }), a: fc.anything(), t: fc.anything(), e: fc.anything(), op: fc.anything(), r: fc.anything() })) }),
      fc.constant({ v: protocolVersion, m: [] }),
      fc.constant({ v: protocolVersion - 1, m: [] }),
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
        const decoded = decodeMessages(frameOf(bytes), keys.node);
        if (decoded.ok) {
          // Junk can happen to be well-formed (a learn needs only a cell and a slot); then it
          // is a message like any other, and encodes back to what was decoded.
          expect(canonical(decodeBody(encodeBody(decoded.messages)))).toBe(canonical({ ok: true, messages: decoded.messages, discovery: [] }));
        } else {
          expect(decoded.detail.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 2000 },
    );
  }, 60_000);

  test("truncating a frame anywhere makes it fail", () => {
    fc.assert(
      fc.property(envelopes, fc.nat(), (messages, cut) => {
        const frame = sign(messages);
        expect(decodeMessages(frame.subarray(0, cut % frame.length), keys.node).ok).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  test("a tampered byte anywhere fails authentication or the checks before it", () => {
    fc.assert(
      fc.property(envelopes, fc.nat(), fc.integer({ min: 1, max: 255 }), (messages, at, flip) => {
        const frame = sign(messages).slice();
        const i = at % frame.length;
        frame[i]! ^= flip;
        const decoded = decodeMessages(frame, keys.node);
        expect(decoded.ok).toBe(false);
        if (decoded.ok) return;
        // Before the MAC only the magic, version, MAC count and key id are read; everything
        // else, the stamp included, is covered by the MAC.
        if (i === 0) expect(decoded.reason).toBe("badMagic");
        else if (i === 1) expect(["badMagic", "badMac"]).toContain(decoded.reason); // "PY" may become "PK", still signed.
        else if (i === 2) expect(decoded.reason).toBe("unsupportedVersion");
        else if (i === 3) expect(["badHeader", "tooShort", "unknownKey", "badMac"]).toContain(decoded.reason);
        else if (i < 8) expect(["unknownKey", "badMac"]).toContain(decoded.reason); // Another held key id fails its MAC.
        else expect(decoded.reason).toBe("badMac");
      }),
      { numRuns: 1000 },
    );
  });

  test("a frame signed with a different secret under the same key id fails the MAC", () => {
    const impostor = new KeyRing({ id: 10, secret: testSecret(10, 1) });
    const decoded = decodeMessages(encodeMessages(impostor, { sender: "n1", receiver: "n2", stamp, messages: [] }), keys.node);
    expect(decoded.ok === false && decoded.reason).toBe("badMac");
  });

  test("a chunk is not taken for a frame of messages", () => {
    const chunk = encodeFrame(ring, { kind: "chunk", sender: "n1", receiver: "n2", stamp, body: new Uint8Array(20) });
    const framed = decodeFrame(chunk, keys.node);
    expect(framed.ok && framed.frame.kind).toBe("chunk");
    const decoded = decodeMessages(chunk, keys.node);
    expect(decoded.ok === false && decoded.reason).toBe("unexpectedChunk");
  });

  test("a frame for another node is rejected, and oversized frames are refused both ways", () => {
    const decoded = decodeFrame(sign([]), keys.node, { receiver: "n3" });
    expect(decoded.ok === false && decoded.reason).toBe("wrongReceiver");
    const tooBig = decodeFrame(new Uint8Array(limits.frameBytesMax + 1), keys.node);
    expect(tooBig.ok === false && tooBig.reason).toBe("tooLarge");
    expect(() => frameOf(new Uint8Array(limits.frameBytesMax))).toThrow("exceed");
  });

  test("the largest header fits the overhead the chunker reserves", () => {
    const long = "x".repeat(limits.plainIdBytesMax);
    const id = `${long}~0123456789abcdef`;
    const rotating = testRing(10, 11);
    const frame = encodeFrame(rotating, { sender: id, receiver: id, stamp: { epoch: Number.MAX_SAFE_INTEGER, counter: Number.MAX_SAFE_INTEGER }, body: new Uint8Array(0) });
    expect(frame.length).toBe(frameOverheadBytes);
    const decoded = decodeFrame(frame, new KeySet({ node: rotating }, "blue"), { receiver: id });
    expect(decoded.ok && decoded.frame.stamp).toEqual({ epoch: Number.MAX_SAFE_INTEGER, counter: Number.MAX_SAFE_INTEGER });
  });

  test("stamps beyond safe integers are refused when framing", () => {
    expect(() => encodeFrame(ring, { sender: "n1", receiver: "n2", stamp: { epoch: 2 ** 53, counter: 1 }, body: new Uint8Array(0) })).toThrow(FrameEncodeError);
    expect(() => encodeFrame(ring, { sender: "n1", receiver: "n2", stamp: { epoch: 1, counter: -1 }, body: new Uint8Array(0) })).toThrow(FrameEncodeError);
  });
});

describe("rotation: a ring with a previous key signs with both", () => {
  const messages = [{ cell: "vol", message: { kind: "learn" as const, from: 3 } }];
  const old = new KeySet({ node: testRing(20) }, "blue");
  const rotated = new KeySet({ node: testRing(21, 20) }, "blue");
  const onlyNew = new KeySet({ node: testRing(21) }, "blue");
  const from = (set: KeySet) => encodeMessages(set.ring("node") as KeyRing, { sender: "n1", receiver: "n2", stamp, messages });

  test("holders of the old file, the rotated file and the new file all verify a rotated sender", () => {
    for (const receiver of [old, rotated, onlyNew]) expect(decodeMessages(from(rotated), receiver).ok).toBe(true);
    const atOld = decodeMessages(from(rotated), old);
    expect(atOld.ok && atOld.header.keyId).toBe(20);
    const atNew = decodeMessages(from(rotated), onlyNew);
    expect(atNew.ok && atNew.header.keyId).toBe(21);
  });

  test("a rotated receiver accepts old and new senders; once the old key is dropped, it is unknown", () => {
    expect(decodeMessages(from(old), rotated).ok).toBe(true);
    expect(decodeMessages(from(onlyNew), rotated).ok).toBe(true);
    const dropped = decodeMessages(from(old), onlyNew);
    expect(dropped.ok === false && dropped.reason).toBe("unknownKey");
    const oldReceiver = decodeMessages(from(onlyNew), old);
    expect(oldReceiver.ok === false && oldReceiver.reason).toBe("unknownKey");
  });

  test("a forger holding one key cannot pass a receiver that checks the other", () => {
    // Signed with the new key only, but claiming the old key id too: the old receiver checks the old MAC.
    const forged = from(rotated).slice();
    const secondMacAt = forged.length - 32;
    forged.fill(0, secondMacAt);
    const atOld = decodeMessages(forged, old);
    expect(atOld.ok === false && atOld.reason).toBe("badMac");
    expect(decodeMessages(forged, onlyNew).ok).toBe(true);
  });

  test("key ids of two different rings in one frame are refused", () => {
    const mixed = new KeyRing({ id: 10, secret: testSecret(10) }, { id: 1, secret: testSecret(1) });
    const frame = encodeMessages(mixed, { sender: "n1", receiver: "n2", stamp, messages: [] });
    const decoded = decodeMessages(frame, keys.node);
    expect(decoded.ok === false && decoded.reason).toBe("badHeader");
  });
});

describe("ids", () => {
  test("plain ids and node ids with an incarnation", () => {
    for (const id of ["n1", "a.b_c-9", "x".repeat(64)]) expect(isPlainId(id) && isNodeId(id)).toBe(true);
    expect(isNodeId("n3~0123456789abcdef")).toBe(true);
    expect(isPlainId("n3~0123456789abcdef")).toBe(false);
    for (const bad of ["", "x".repeat(65), "n3~0123456789ABCDEF", "n3~0123456789abcde", "n3~0123456789abcdef0", "~0123456789abcdef", "n3~", "a b", "n3~~0123456789abcdef", "é"]) {
      expect(isNodeId(bad)).toBe(false);
    }
    expect(nodePart("n3~0123456789abcdef")).toBe("n3");
    expect(nodePart("n3")).toBe("n3");
  });

  test("frames carry both forms; a node with an incarnation takes frames to its plain id or its exact id", () => {
    const self = "n2~0123456789abcdef";
    expect(isAddressedTo("n2", self)).toBe(true);
    expect(isAddressedTo(self, self)).toBe(true);
    expect(isAddressedTo("n2~fedcba9876543210", self)).toBe(false);
    expect(isAddressedTo("n2~0123456789abcdef", "n2")).toBe(false);
    const frame = encodeMessages(ring, { sender: "n1~00000000000000ff", receiver: "n2", stamp, messages: [] });
    const decoded = decodeMessages(frame, keys.node, { receiver: self });
    expect(decoded.ok && decoded.header.sender).toBe("n1~00000000000000ff");
    const stale = encodeMessages(ring, { sender: "n1", receiver: "n2~fedcba9876543210", stamp, messages: [] });
    const refused = decodeMessages(stale, keys.node, { receiver: self });
    expect(refused.ok === false && refused.reason).toBe("wrongReceiver");
    expect(() => encodeMessages(ring, { sender: "n1~XYZ", receiver: "n2", stamp, messages: [] })).toThrow(FrameEncodeError);
  });
});

test("the CBOR decoder never loads the native extractor, which crashed the process on fuzzed input", async () => {
  await import("../../src/wire/cbor.ts");
  const { isNativeAccelerationEnabled } = await import("cbor-x/decode");
  expect(isNativeAccelerationEnabled).toBe(false);
});
