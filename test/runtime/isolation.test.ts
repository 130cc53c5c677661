// Every runtime-specific call lives in src/runtime: no other source file names Bun or Deno
// in code (comments may mention them), nor imports a runtime's own modules.

import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dirname ?? ".", "../..");
const src = join(root, "src");

function sources(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** The code without its comments and string contents, so only real uses count. */
function codeOf(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:\\])\/\/.*$/gm, "$1")
    .replace(/`(?:\\[\s\S]|[^`\\])*`/g, "``");
}

const runtimeNames = /\b(Bun|Deno)\b|["'](bun|bun:[a-z]+|deno)["']/;

test("the checker sees through comments but not through code", () => {
  expect(runtimeNames.test(codeOf("// measured on Bun\nconst x = 1;"))).toBe(false);
  expect(runtimeNames.test(codeOf("/* Deno.serve */ const x = 1;"))).toBe(false);
  expect(runtimeNames.test(codeOf("const s = Bun.serve({});"))).toBe(true);
  expect(runtimeNames.test(codeOf("const d = (globalThis as any).Deno;"))).toBe(true);
  expect(runtimeNames.test(codeOf('import { spawn } from "bun";'))).toBe(true);
  expect(runtimeNames.test(codeOf('import { test } from "bun:test";'))).toBe(true);
});

test("no file in src/ outside src/runtime names Bun or Deno in code", () => {
  const offenders = sources(src)
    .filter((path) => !relative(src, path).startsWith("runtime"))
    .filter((path) => runtimeNames.test(codeOf(readFileSync(path, "utf8"))))
    .map((path) => relative(root, path));
  expect(offenders).toEqual([]);
  expect(sources(src).length).toBeGreaterThan(50);
});
