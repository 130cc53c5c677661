import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { fastestHmac, hmacImplementations, hmacSha256 } from "../../src/wire/hmac.ts";
import { KeyRing } from "../../src/wire/keyring.ts";

const hex = (data: Uint8Array) => Array.from(data, (b) => b.toString(16).padStart(2, "0")).join("");
const text = (s: string) => new TextEncoder().encode(s);

// RFC 4231, test cases 1, 2, 6 and 7: short, textual and longer-than-a-block keys.
const vectors = [
  { key: new Uint8Array(20).fill(0x0b), data: text("Hi There"), mac: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
  { key: text("Jefe"), data: text("what do ya want for nothing?"), mac: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
  { key: new Uint8Array(131).fill(0xaa), data: text("Test Using Larger Than Block-Size Key - Hash Key First"), mac: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
  {
    key: new Uint8Array(131).fill(0xaa),
    data: text("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."),
    mac: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
  },
];

describe("HMAC-SHA256", () => {
  for (const implementation of hmacImplementations) {
    test(`the ${implementation} implementation gives the MACs of RFC 4231`, () => {
      for (const { key, data, mac } of vectors) expect(hex(hmacSha256(key, implementation)(data))).toBe(mac);
    });

    test(`the ${implementation} implementation gives the same MAC when called again with one key`, () => {
      const mac = hmacSha256(vectors[1]!.key, implementation);
      const first = hex(mac(vectors[1]!.data));
      mac(text("something else in between"));
      expect(hex(mac(vectors[1]!.data))).toBe(first);
    });
  }

  test("both implementations agree on any key and input", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.uint8Array({ maxLength: 2000 }), (key, data) => {
        expect(hex(hmacSha256(key, "native")(data))).toBe(hex(hmacSha256(key, "noble")(data)));
      }),
      { numRuns: 300 },
    );
  });

  test("a key ring signs with the implementation chosen as the faster, and gets the RFC's MAC", () => {
    expect(hmacImplementations).toContain(fastestHmac());
    const key = new Uint8Array(32).fill(0x0b);
    const expected = hex(hmacSha256(key, "noble")(text("Hi There")));
    expect(hex(new KeyRing({ id: 1, secret: key }).mac(1, text("Hi There")) as Uint8Array)).toBe(expected);
    expect(new KeyRing({ id: 1, secret: key }).mac(2, text("Hi There"))).toBeUndefined();
  });
});
