// The file system as the log sees it: a handful of calls, passed in at construction so that
// tests and the simworld can replace the disk with a simulated one (memory.ts) that loses
// unsynced writes, tears tails and fails fsyncs on demand. `nodeDisk` is the real one, built
// on node:fs only, so the log runs under Node and Deno as well as Bun.
//
// Contract. Paths are directory + "/" + name. Writes are positional and may land in a page
// cache: only `sync` makes a file's data (and its length) durable, and only `syncDirectory`
// of the directory that holds a name makes its creation, removal or renaming durable; that
// includes a directory's own name, which its parent holds. Any method may throw; the log
// treats an error from `write`, `truncate`, `sync` or `syncDirectory` as fatal.

import * as fs from "node:fs";

/** Syncs of at most this many written bytes run on the calling thread (see `nodeDisk`). */
export const inlineSyncBytesMax = 128 * 1024;

/** An open file, owned by the disk that opened it. */
export type FileHandle = number;

export interface Disk {
  /**
   * Creates the directory (and its parents) when missing; returns the directories it created,
   * outermost first, whose names are not durable until their parents are synced.
   */
  makeDirectory(directory: string): string[];
  /** Whether a file or directory of that path exists. */
  exists(path: string): boolean;
  /** Renames a file or a directory; the target must not exist. */
  rename(from: string, to: string): void;
  /** The names in a directory, in no particular order. */
  list(directory: string): string[];
  /** Creates a new, empty file for reading and writing; throws if the name exists. */
  create(path: string): FileHandle;
  /** Opens an existing file for reading and writing. */
  open(path: string): FileHandle;
  /** The file's current length in bytes, written but unsynced bytes included. */
  size(file: FileHandle): number;
  /** Reads up to `length` bytes at `position` into `buffer[offset...]`; returns the count (0 at the end). */
  read(file: FileHandle, buffer: Uint8Array, options: { offset: number; length: number; position: number }): number;
  /** Writes all of `bytes` at `position`. */
  write(file: FileHandle, bytes: Uint8Array, position: number): void;
  truncate(file: FileHandle, length: number): void;
  /**
   * Makes the file's data and length durable (fdatasync). Never called twice at once on one
   * file. `bytes`, when the caller knows it, is how much was written since the file's last
   * sync: the real disk syncs a few kilobytes on the calling thread (see `nodeDisk`).
   */
  sync(file: FileHandle, hint?: { readonly bytes: number }): Promise<void>;
  /** Makes the names created and removed in the directory durable. */
  syncDirectory(directory: string): Promise<void>;
  close(file: FileHandle): void;
  remove(path: string): void;
  /**
   * `remove`, off the event loop: freeing a large file's blocks takes the kernel a while (the
   * eight 64 MB segments a million cells' compaction retires, about 350 ms together on this
   * machine's ext4), and a node must not stop serving for it.
   */
  removeLater(path: string): Promise<void>;
}

/**
 * The real disk. Writes are synchronous (`writeSync` lands in the page cache in microseconds).
 * An fsync of a group commit's round (at most `inlineSyncBytesMax` written since the file's
 * last sync) runs on the calling thread (`fdatasyncSync`): the event loop waits for it, and
 * the node does nothing else meanwhile, but a thread-pool round trip (`fs.fdatasync` with a
 * callback) cost this machine's ext4 15 to 40 us more of wall time and about 40 us more of
 * CPU a sync (81 against 43 us, nearly all of it the kernel's, waking the pool and the loop:
 * `npm run bench:sync`), and the colony did 13% more puts at 64 clients syncing inline
 * (docs/performance.md).
 * Larger syncs, and syncs whose size the caller does not say (a compaction's copy, recovery),
 * go through the thread pool, so that the event loop keeps receiving messages and
 * appending records while a long one is in flight. Only the first inline sync of a turn of
 * the event loop resumes its caller at once; a later one resumes it in the next turn (see
 * below), as the thread pool's completion would.
 */
export function nodeDisk(): Disk {
  const pooled = (file: FileHandle) =>
    new Promise<void>((resolve, reject) => fs.fdatasync(file, (error) => (error === null ? resolve() : reject(error))));
  // Whether an inline sync already ran in this turn of the event loop (reset by the next turn).
  let syncedThisTurn = false;
  const syncFile = (file: FileHandle, hint?: { readonly bytes: number }): Promise<void> => {
    if (hint === undefined || hint.bytes > inlineSyncBytesMax) return pooled(file);
    try {
      fs.fdatasyncSync(file);
    } catch (error) {
      return Promise.reject(error);
    }
    if (!syncedThisTurn) {
      syncedThisTurn = true;
      setImmediate(() => {
        syncedThisTurn = false;
      });
      return Promise.resolve();
    }
    // A second inline sync in one turn: what waits for it goes on in the next turn, after the
    // socket's waiting frames and the timers. A caller that resumes at once and syncs again
    // (a node stepping its own votes for thousands of cells, each step a new round) would
    // otherwise run round after round without reading a frame: 10,000 cells' first writes
    // took 74 to 77 s and lost 6 to 12 of them to their deadline, against 16 s and none.
    return new Promise<void>((resolve) => setImmediate(resolve));
  };
  return {
    makeDirectory: (directory) => {
      const first = fs.mkdirSync(directory, { recursive: true });
      if (first === undefined) return [];
      // Node returns the outermost directory it created; the rest lie between it and `directory`.
      const created = [directory];
      for (let at = directory; at !== first && at.length > first.length; ) {
        at = at.slice(0, Math.max(at.lastIndexOf("/"), 0));
        created.unshift(at);
      }
      return created;
    },
    exists: (path) => fs.existsSync(path),
    rename: (from, to) => {
      // rename(2) replaces an existing file or empty directory: refuse instead.
      if (fs.existsSync(to)) throw new Error(`EEXIST: ${to} exists`);
      fs.renameSync(from, to);
    },
    list: (directory) => fs.readdirSync(directory),
    create: (path) => fs.openSync(path, "wx+"),
    open: (path) => fs.openSync(path, "r+"),
    size: (file) => fs.fstatSync(file).size,
    read: (file, buffer, { offset, length, position }) => fs.readSync(file, buffer, offset, length, position),
    write: (file, bytes, position) => {
      let done = 0;
      while (done < bytes.length) done += fs.writeSync(file, bytes, done, bytes.length - done, position + done);
    },
    truncate: (file, length) => fs.ftruncateSync(file, length),
    sync: syncFile,
    syncDirectory: async (directory) => {
      // A directory is synced through a read-only descriptor; fsync, not fdatasync, because
      // what must become durable is the directory's metadata.
      const handle = fs.openSync(directory, "r");
      try {
        await new Promise<void>((resolve, reject) => fs.fsync(handle, (error) => (error === null ? resolve() : reject(error))));
      } finally {
        fs.closeSync(handle);
      }
    },
    close: (file) => fs.closeSync(file),
    remove: (path) => fs.unlinkSync(path),
    // Deno calls back with undefined, not null, on success.
    removeLater: (path) => new Promise<void>((resolve, reject) => fs.unlink(path, (error) => (error === null || error === undefined ? resolve() : reject(error)))),
  };
}
