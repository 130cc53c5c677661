// How to start another process of this same program, from sources or from the binary, on
// the runtime this one runs on; and how to tell a person to.

import { existsSync } from "node:fs";
import { isAbsolute, join, relative } from "node:path";
import { runtime } from "../runtime/mod.ts";

export function selfCommand(): string[] {
  return runtime.selfCommand();
}

/** A word for a POSIX shell: quoted when it holds anything but safe characters. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

/** A path as a person in this directory would type it: relative when it is inside, else absolute. */
function typed(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? (rel.includes("/") ? rel : `./${rel}`) : path;
}

/**
 * The command a person can paste, in this directory, to run this program again: Bun is
 * not on PATH after `npm install`, so from sources it is node_modules/.bin/bun when that is
 * here, and the runtime's own path otherwise.
 */
export function hintCommand(): string {
  const argv = selfCommand();
  if (runtime.compiled || runtime.name !== "bun") return argv.map((w, i) => shellWord(i === 0 ? w : typed(w))).join(" ");
  const local = join(process.cwd(), "node_modules", ".bin", "bun");
  const bun = existsSync(local) ? "node_modules/.bin/bun" : (argv[0] as string);
  return [bun, ...argv.slice(1).map(typed)].map(shellWord).join(" ");
}
