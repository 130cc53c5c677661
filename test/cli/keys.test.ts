// `physalia keys generate` and key files as ctl reads them (issue 15, defect 13): each
// problem is one line with the rule's exit status.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../src/cli/main.ts";

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function physalia(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (line) => out.push(line), err: (line) => err.push(line) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("physalia keys generate", () => {
  test("writes the files once, and says why not otherwise", async () => {
    const dir = await mkdtemp(join(tmpdir(), "physalia-keys-"));
    dirs.push(dir);
    const out = join(dir, "keys");
    expect((await physalia("keys", "generate", "--out", out)).code).toBe(0);
    const again = await physalia("keys", "generate", "--out", out);
    expect(again).toMatchObject({ code: 1, err: `physalia keys: Cannot write ${join(out, "node-blue.json")}: it exists, and keys are never overwritten` });
    expect((await physalia("keys", "generate")).code).toBe(2);
    expect((await physalia("keys", "generate", "--out", join(dir, "k2"), "--colors", "bad color")).err).toContain("is not a color name");
    const unwritable = await physalia("keys", "generate", "--out", "/proc/physalia-keys");
    expect(unwritable.code).toBe(1);
    expect(unwritable.err).toStartWith("physalia keys: Cannot write keys to /proc/physalia-keys: ");
    expect(unwritable.err.split("\n").length).toBe(1);

    // A secret one hex digit short is called that, not "not hex".
    const file = JSON.parse(await readFile(join(out, "client.json"), "utf8"));
    file.client.keys[0].secret = file.client.keys[0].secret.slice(0, 63);
    await writeFile(join(dir, "short.json"), JSON.stringify(file));
    await writeFile(join(dir, "t.json"), JSON.stringify({ version: 1, powerDomains: ["p1"], colors: ["blue"], nodes: [{ id: "n1", address: "127.0.0.1:9", row: "r", rack: "k", power: "p1", color: "blue", capacity: 1 }] }));
    const short = await physalia("ctl", "--topology", join(dir, "t.json"), "--keys", join(dir, "short.json"), "get", "c", "k");
    expect(short.code).toBe(2);
    expect(short.err).toContain("has an odd number of hex digits (63)");
    expect(short.err).not.toContain("not hex");
  });
});
