// The JSON form of values and transactions as the command line reads them (issue 15, defects
// 6, 9 and 13): malformed JSON is never stored as a string, floats never become integers, a
// duplicate key is refused, and results print every value in the same typed form.

import { describe, expect, test } from "bun:test";
import { JsonInputError, parseJson, resultToJson, transactionFromJson, valueFromText } from "../../src/client/json.ts";
import { utf8 } from "../../src/core/value.ts";

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof JsonInputError) return error.message;
    throw error;
  }
  throw new Error("expected a JsonInputError");
}

describe("a VALUE argument", () => {
  test("malformed JSON is refused, not stored as a string", () => {
    for (const text of ['{"int":"5"', "[1,2", "NaN", "True", "FALSE", "Null", "-Infinity", "+5", ".5", "0x10", "5abc", "'text'", '"unterminated', "{}", "[]", "[1]"]) {
      expect(refusal(() => valueFromText(text, "VALUE"))).toContain("VALUE");
    }
  });

  test("floats are refused, however they are written", () => {
    for (const text of ["1.0", "1e3", "1E3", "-0.5", "2.5e-3", "1.5"]) expect(refusal(() => valueFromText(text, "VALUE"))).toContain("float");
  });

  test("an integer past the safe range is refused with its own digits, and the {\"int\"} form takes it exactly", () => {
    const message = refusal(() => valueFromText("9007199254740993", "VALUE"));
    expect(message).toContain("9007199254740993");
    expect(message).not.toContain("9007199254740992");
    expect(valueFromText('{"int": "9007199254740993"}', "VALUE")).toBe(9007199254740993n);
    expect(valueFromText("9007199254740991", "VALUE")).toBe(9007199254740991n);
    expect(valueFromText("-42", "VALUE")).toBe(-42n);
  });

  test("bare text that cannot be mistaken for JSON is a string; JSON is JSON", () => {
    expect(valueFromText("server-17", "VALUE")).toEqual(utf8("server-17"));
    expect(valueFromText("hello world", "VALUE")).toEqual(utf8("hello world"));
    expect(valueFromText("--help", "VALUE")).toEqual(utf8("--help"));
    expect(valueFromText('"42"', "VALUE")).toEqual(utf8("42"));
    expect(valueFromText("true", "VALUE")).toBe(true);
    expect(valueFromText('{"bool": false}', "VALUE")).toBe(false);
    expect(valueFromText('{"bytes": "AAE="}', "VALUE")).toEqual(new Uint8Array([0, 1]));
  });

  test("a huge input is not echoed back in full", () => {
    const digits = "1".repeat(100_000);
    for (const text of [digits, `{"int": "${digits}x"}`, `${digits}.5`]) {
      const message = refusal(() => valueFromText(text, "VALUE"));
      expect(message.length).toBeLessThan(300);
    }
  });
});

describe("parseJson", () => {
  test("refuses a duplicate key at any depth", () => {
    expect(refusal(() => parseJson('{"a": 1, "a": 2}', "JSON"))).toContain('duplicate key "a"');
    expect(refusal(() => parseJson('{"write": [{"put": "k", "value": 1, "value": 2}]}', "JSON"))).toContain('duplicate key "value"');
  });

  test("says where the syntax breaks", () => {
    expect(refusal(() => parseJson('{"a": }', "JSON"))).toContain("position 6");
    expect(refusal(() => parseJson("[1, 2] x", "JSON"))).toContain("position 7");
  });

  test("bounds nesting", () => {
    expect(refusal(() => parseJson(`${"[".repeat(10_000)}${"]".repeat(10_000)}`, "JSON"))).toContain("nested");
  });

  test("reads strings with every escape", () => {
    expect(parseJson('"a\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9"', "JSON")).toBe('a"\\/\b\f\n\r\té');
  });
});

describe("a transaction in JSON", () => {
  test("refuses duplicate keys and floats inside it", () => {
    expect(refusal(() => transactionFromJson(parseJson('{"read": ["a"], "read": ["b"]}', "JSON")))).toContain("duplicate key");
    expect(refusal(() => transactionFromJson(parseJson('{"write": [{"increment": "n", "by": 1.0}]}', "JSON")))).toContain("float");
    expect(refusal(() => transactionFromJson(parseJson('{"scan": {"limit": 1e1}}', "JSON")))).toContain("float");
  });

  test("takes what it took before", () => {
    const tx = transactionFromJson(parseJson('{"read": ["a"], "if": [{"key": "e", "equals": 7}], "write": [{"increment": "e", "by": 2}], "scan": {"start": "a", "limit": 5}}', "JSON"));
    expect(tx).toEqual({ reads: ["a"], conditions: [{ key: "e", test: "equals", value: 7n }], writes: [{ key: "e", op: "increment", by: 2n }], scan: { start: "a", limit: 5 } });
  });
});

describe("results", () => {
  test("increments print as typed integers, like every other value", () => {
    const tx = { reads: [], conditions: [], writes: [{ key: "n", op: "increment" as const, by: 1n }] };
    expect(resultToJson(tx, { status: "committed", reads: [], increments: [["n", 5n]] })).toEqual({ status: "committed", increments: { n: { int: "5" } } });
  });
});
