// An OS file lock for both runtimes: flock(2) with LOCK_EX | LOCK_NB, called through the
// runtime's foreign-function interface (bun:ffi, Deno.dlopen) on the C library, so no
// native addon is built. The kernel releases the lock when its file is closed or its
// process ends in any way, so a lock can never outlive its owner: no pid to check, no pid
// reused after a reboot to be mistaken for the owner, no dead owner awaiting its reaping.

import { closeSync, openSync } from "node:fs";
import { type FileLock, RuntimeError } from "./types.ts";

/** flock and errno, however the runtime reaches them. */
export interface LockCalls {
  flock(fd: number, operation: number): number;
  errno(): number;
}

const lockExclusive = 2;
const lockNonBlocking = 4;

/** Where the C library and its errno are on the platforms flock(2) exists on. */
export function libc(): { readonly path: string; readonly errnoSymbol: string; readonly wouldBlock: number } {
  if (process.platform === "linux") return { path: "libc.so.6", errnoSymbol: "__errno_location", wouldBlock: 11 };
  if (process.platform === "darwin" || process.platform === "freebsd") return { path: process.platform === "darwin" ? "libc.dylib" : "libc.so.7", errnoSymbol: "__error", wouldBlock: 35 };
  throw new RuntimeError(`Cannot lock files on ${process.platform}: physalia's lock is flock(2)`);
}

/** Opens (creating) `path` and takes its lock; null when another process holds it. */
export function lockWith(calls: LockCalls, path: string): FileLock | null {
  const { wouldBlock } = libc();
  const fd = openSync(path, "a+", 0o644);
  if (calls.flock(fd, lockExclusive | lockNonBlocking) === 0) {
    let held = true;
    return {
      fd,
      release() {
        if (!held) return;
        held = false;
        closeSync(fd); // Closing the file releases the lock.
      },
    };
  }
  const errno = calls.errno();
  closeSync(fd);
  if (errno === wouldBlock) return null;
  throw new RuntimeError(`Cannot lock ${path}: flock failed with errno ${errno}`);
}
