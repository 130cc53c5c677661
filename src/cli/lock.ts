// One node process per data directory: two writers on one log would corrupt it. The lock
// is a file holding the owner's pid, created atomically; a lock whose process is gone (a
// node that was SIGKILLed) is taken over.

import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { CliError } from "./colony.ts";

export interface DirectoryLock {
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as { code?: string }).code === "EPERM";
  }
}

export function lockDirectory(directory: string): DirectoryLock {
  mkdirSync(directory, { recursive: true });
  const path = join(directory, "LOCK");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return {
        release() {
          try {
            unlinkSync(path);
          } catch {
            // Already gone: nothing to release.
          }
        },
      };
    } catch (error) {
      if ((error as { code?: string }).code !== "EEXIST") {
        throw new CliError(`Cannot lock ${directory}: ${error instanceof Error ? error.message : String(error)}`);
      }
      const owner = Number.parseInt(readFileSync(path, "utf8"), 10);
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) {
        throw new CliError(`Cannot use ${directory}: another node process (pid ${owner}) is using it`);
      }
      unlinkSync(path); // A stale lock: its process is gone.
    }
  }
  throw new CliError(`Cannot lock ${directory}: the lock file keeps reappearing`);
}
