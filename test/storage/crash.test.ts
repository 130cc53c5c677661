// Crash consistency with real processes, after sled: a child appends and syncs under load and
// reports what each resolved sync covered; we SIGKILL it at random moments and restart it.
// Each restart must recover at least what was acknowledged, and exactly records 1..n with
// nothing missing or garbled in between (the child checks contents), never more than it wrote.

import { describe, expect, test } from "bun:test";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { TestRandom, withTempDirectory } from "./support.ts";

const bun = join(import.meta.dir, "../../node_modules/.bin/bun");
const child = join(import.meta.dir, "crash-child.ts");

interface Run {
  readonly process: ChildProcess;
  readonly lines: string[];
  readonly exited: Promise<number | null>;
  /** Resolves with the first line that starts with `prefix`. */
  waitFor(prefix: string): Promise<string>;
}

function start(directory: string, ...flags: string[]): Run {
  const process = spawn(bun, [child, directory, ...flags], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  const waiting: { prefix: string; resolve: (line: string) => void }[] = [];
  let partial = "";
  let errors = "";
  process.stdout!.setEncoding("utf8");
  process.stdout!.on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      for (const waiter of waiting.filter((w) => line.startsWith(w.prefix))) {
        waiting.splice(waiting.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  process.stderr!.setEncoding("utf8");
  process.stderr!.on("data", (chunk: string) => void (errors += chunk));
  const exited = new Promise<number | null>((resolve) => process.once("exit", (code) => resolve(code)));
  const waitFor = (prefix: string) =>
    new Promise<string>((resolve, reject) => {
      const found = lines.find((line) => line.startsWith(prefix));
      if (found !== undefined) return resolve(found);
      waiting.push({ prefix, resolve });
      void exited.then((code) => reject(new Error(`child exited (${code}) before "${prefix}": ${lines.slice(-3).join(" | ")} ${errors}`)));
    });
  return { process, lines, exited, waitFor };
}

const last = (lines: readonly string[], prefix: string): number => {
  let value = 0;
  for (const line of lines) if (line.startsWith(prefix)) value = Math.max(value, Number(line.slice(prefix.length)));
  return value;
};

describe("crashes of a real process", () => {
  test("a process killed at random moments recovers every acknowledged record and nothing it did not write", async () => {
    await withTempDirectory(async (directory) => {
      const random = new TestRandom(20_200_225);
      let acknowledged = 0;
      let written = 0;
      const recoveredCounts: number[] = [];
      const rounds = 6;
      for (let round = 0; round <= rounds; round++) {
        const run = start(directory, ...(round === rounds ? ["--verify-only"] : []));
        const line = await run.waitFor("recovered ");
        const [, count, damage] = line.split(" ");
        const recovered = Number(count);
        const context = `round ${round}: "${line}" after acknowledging ${acknowledged} and writing ${written}`;
        // Everything acknowledged, nothing beyond what was written (the child checked 1..n).
        if (!(recovered >= acknowledged && recovered <= written)) throw new Error(`lost or invented records: ${context}`);
        // Killing a process loses no page cache, but a kill during a write of several pages can
        // cut that write short (Linux checks for fatal signals between pages): a torn tail.
        if (damage !== "none" && damage !== "torn") throw new Error(`unexpected damage: ${context}`);
        recoveredCounts.push(recovered);
        if (round === rounds) {
          expect(await run.exited).toBe(0);
          break;
        }
        await run.waitFor("A ");
        await new Promise((resolve) => setTimeout(resolve, 30 + random.int(200)));
        run.process.kill("SIGKILL");
        await run.exited;
        acknowledged = Math.max(recovered, last(run.lines, "A "));
        written = Math.max(recovered, last(run.lines, "W "));
        expect(acknowledged).toBeGreaterThan(recovered);
      }
      // Every round made progress that the next one kept.
      for (let i = 1; i < recoveredCounts.length; i++) expect(recoveredCounts[i]!).toBeGreaterThan(recoveredCounts[i - 1]!);
    });
  }, 30_000);
});
