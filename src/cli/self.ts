// How to start another process of this same program, from sources or from the binary, on
// the runtime this one runs on; and how to tell a person to.

import { existsSync, realpathSync } from "node:fs";
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
 * The command a person can paste, in this directory, to run this program again. The runtime
 * is not on PATH after `npm install`: from sources, it is `node_modules/.bin/<runtime>` when
 * that link is here and leads to the runtime running now, else the runtime's own path.
 */
export function hintCommand(): string {
  const argv = selfCommand();
  const [executable, ...rest] = argv as [string, ...string[]];
  if (runtime.compiled) return [typed(executable), ...rest].map(shellWord).join(" ");
  const link = join("node_modules", ".bin", runtime.name);
  let same = false;
  try {
    same = existsSync(link) && realpathSync(link) === realpathSync(executable);
  } catch {
    same = false;
  }
  return [same ? link : executable, ...rest.map(typed)].map(shellWord).join(" ");
}
