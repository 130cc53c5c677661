import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { NonceCache, checkSignal, newNonce, signSignal, signalAgeMsMax, type Signal } from "../../src/transport/signal.ts";
import { KeyRing } from "../../src/wire/keyring.ts";

const secret = (fill: number) => new Uint8Array(32).fill(fill);
const ring = new KeyRing({ id: 2, secret: secret(2) }, { id: 1, secret: secret(1) });
const now = 1_700_000_000_000;
const offer: Signal = { kind: "offer", from: "127.0.0.1:7101", to: "127.0.0.1:7102", nonce: "0123456789abcdef0123456789abcdef", at: now, sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n" };
const expectOffer = { kind: "offer" as const, to: "127.0.0.1:7102", nowMs: now };

describe("signalling messages", () => {
  test("a signed offer checks, with the current or the previous key", () => {
    const text = JSON.stringify(signSignal(ring, offer));
    expect(checkSignal(ring, text, expectOffer)).toEqual({ ok: true, signal: offer, keyId: 2 });
    const old = new KeyRing({ id: 1, secret: secret(1) });
    expect(checkSignal(ring, JSON.stringify(signSignal(old, offer)), expectOffer)).toEqual({ ok: true, signal: offer, keyId: 1 });
  });

  test("an answer is signed with its offer's key, so a client holding only its own key can check it", () => {
    // A node verifies offers under any key of its file, but a client's file has only the client key.
    const client = new KeyRing({ id: 7, secret: secret(7) });
    const node = { currentId: 2, has: (id: number) => id === 2 || id === 7, mac: (id: number, data: Uint8Array) => (id === 7 ? client : ring).mac(id, data) };
    const checked = checkSignal(node, JSON.stringify(signSignal(client, offer)), expectOffer);
    expect(checked).toMatchObject({ ok: true, keyId: 7 });
    const answer: Signal = { ...offer, kind: "answer", from: offer.to, to: offer.from };
    const expectAnswer = { kind: "answer" as const, to: offer.from, nowMs: now };
    expect(checkSignal(client, JSON.stringify(signSignal(node, answer, checked.ok ? checked.keyId : 2)), expectAnswer)).toMatchObject({ ok: true, keyId: 7 });
    // Signed with the node's own key, the client could not check it: the bug this guards against.
    expect(checkSignal(client, JSON.stringify(signSignal(node, answer)), expectAnswer)).toMatchObject({ ok: false, status: 401 });
  });

  test("a signal from another colony, or with any signed field changed, is refused as unauthenticated", () => {
    const stranger = new KeyRing({ id: 2, secret: secret(9) });
    expect(checkSignal(ring, JSON.stringify(signSignal(stranger, offer)), expectOffer)).toMatchObject({ ok: false, status: 401 });
    const signed = signSignal(ring, offer);
    for (const change of [{ sdp: `${offer.sdp}a=x\r\n` }, { from: "127.0.0.1:7103" }, { at: now + 1 }, { nonce: "f".repeat(32) }, { kind: "answer" }]) {
      const expectKind = "kind" in change ? { ...expectOffer, kind: "answer" as const } : expectOffer;
      expect(checkSignal(ring, JSON.stringify({ ...signed, ...change }), expectKind)).toMatchObject({ ok: false, status: 401 });
    }
  });

  test("a signal for another node, a stale one, or one of the wrong kind is refused", () => {
    const text = JSON.stringify(signSignal(ring, offer));
    expect(checkSignal(ring, text, { ...expectOffer, to: "127.0.0.1:7109" })).toMatchObject({ ok: false, status: 409 });
    expect(checkSignal(ring, text, { ...expectOffer, nowMs: now + signalAgeMsMax + 1 })).toMatchObject({ ok: false, status: 409 });
    expect(checkSignal(ring, text, { ...expectOffer, nowMs: now - signalAgeMsMax - 1 })).toMatchObject({ ok: false, status: 409 });
    expect(checkSignal(ring, text, { ...expectOffer, nowMs: now + signalAgeMsMax })).toMatchObject({ ok: true });
    expect(checkSignal(ring, text, { ...expectOffer, kind: "answer" })).toMatchObject({ ok: false, status: 400 });
  });

  test("malformed signals get a reason, never an exception", () => {
    const signed = signSignal(ring, offer) as unknown as Record<string, unknown>;
    for (const text of ["", "null", "[]", "{", JSON.stringify({ ...signed, v: 2 }), JSON.stringify({ ...signed, nonce: "xyz" }), JSON.stringify({ ...signed, at: 1.5 }), JSON.stringify({ ...signed, mac: 7 }), JSON.stringify({ ...signed, sdp: "" }), "x".repeat(20_000)]) {
      expect(checkSignal(ring, text, expectOffer)).toMatchObject({ ok: false, status: 400 });
    }
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.record({ v: fc.constant(1), kind: fc.constant("offer"), from: fc.string(), to: fc.string(), nonce: fc.string(), at: fc.anything(), key: fc.anything(), sdp: fc.string(), mac: fc.string() }).map((r) => JSON.stringify(r))), (text) => {
        const result = checkSignal(ring, text, expectOffer);
        expect(result.ok).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  test("an answerer accepts each nonce once while it could be fresh, and forgets it after", () => {
    const cache = new NonceCache(3);
    const a = newNonce();
    expect(/^[0-9a-f]{32}$/.test(a)).toBe(true);
    expect(cache.accept(a, now)).toBe(true);
    expect(cache.accept(a, now + 1)).toBe(false);
    expect(cache.accept(newNonce(), now)).toBe(true);
    expect(cache.accept(newNonce(), now)).toBe(true);
    expect(cache.accept(newNonce(), now)).toBe(false); // full of fresh nonces
    expect(cache.accept(a, now + 2 * signalAgeMsMax + 1)).toBe(true); // the old ones expired
  });
});
