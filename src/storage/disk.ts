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
  /** Makes the file's data and length durable (fdatasync). Never called twice at once on one file. */
  sync(file: FileHandle): Promise<void>;
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
 * The real disk. Writes are synchronous (`writeSync` lands in the page cache in microseconds);
 * fsyncs go through the thread pool (`fs.fdatasync` with a callback), so the node's event loop
 * keeps receiving messages and appending records while a sync is in flight, and the next group
 * commit is already filling. Measured on a shared VM (bench/storage.ts, three runs): for one
 * writer syncing 16 records at a time the two are within noise (24-29k records/s on the thread
 * pool, 27-39k with `fdatasyncSync`); for 64 concurrent callers, which is how a node's cells use
 * the log, the thread pool was as fast or faster (39-41k against 29-36k). What decides it is
 * that `fdatasyncSync` stops the whole node for every fsync.
 */
export function nodeDisk(): Disk {
  const syncFile = (file: FileHandle) =>
    new Promise<void>((resolve, reject) => fs.fdatasync(file, (error) => (error === null ? resolve() : reject(error))));
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
