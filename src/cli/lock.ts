// One node process per data directory: two writers on one log would corrupt it. The lock is
// an OS lock (flock(2), see src/runtime/flock.ts) on the directory's LOCK file. The kernel
// releases it when its owner ends, however it ends, so a SIGKILLed owner (reaped or not)
// never blocks a restart, and no other process that happens to have the owner's old pid
// (after a reboot) is mistaken for it. The file stays; it holds the owner's pid only so that
// a refusal can name the process.

import { ftruncateSync, mkdirSync, readFileSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { errorText, runtime } from "../runtime/mod.ts";
import { CliError, InputError } from "./colony.ts";

export interface DirectoryLock {
  release(): void;
}

/** Refuses a path that exists and is not a directory: bad input, said in one line. */
export function checkDirectory(directory: string, flag = "--data"): void {
  let stat;
  try {
    stat = statSync(directory);
  } catch {
    return; // Missing: it will be created.
  }
  if (!stat.isDirectory()) throw new InputError(`Cannot use ${flag} ${directory}: it is a file, not a directory`);
}

export async function lockDirectory(directory: string): Promise<DirectoryLock> {
  checkDirectory(directory);
  try {
    mkdirSync(directory, { recursive: true });
  } catch (error) {
    throw new CliError(`Cannot create ${directory}: ${errorText(error)}`);
  }
  const path = join(directory, "LOCK");
  let lock;
  try {
    lock = await runtime.lockFile(path);
  } catch (error) {
    throw new CliError(`Cannot lock ${directory}: ${errorText(error)}`);
  }
  if (lock === null) {
    let owner = "";
    try {
      const pid = Number.parseInt(readFileSync(path, "utf8"), 10);
      if (Number.isInteger(pid) && pid > 0) owner = ` (pid ${pid})`;
    } catch {
      // The pid is only for the message.
    }
    throw new CliError(`Cannot use ${directory}: another node process${owner} is using it`);
  }
  try {
    ftruncateSync(lock.fd, 0);
    writeSync(lock.fd, `${process.pid}\n`);
  } catch {
    // The pid is only for the message; the lock is what counts.
  }
  return lock;
}
