// A simulated disk for tests and the simworld. It keeps two versions of everything: what the
// page cache holds (what reads see) and what is durable (what survives a power failure). A
// file's data becomes durable at `sync`, and a directory's names at `syncDirectory`.
//
// `crash(mode)` returns a new disk holding what survives:
// - "process": the process died, the kernel did not; everything written survives.
// - "power": the machine lost power. Each file keeps its durable bytes plus a random prefix of
//   what was written after its last sync, sometimes with the tail of that prefix garbled (a
//   torn sector); each name created or removed since its directory's last sync may or may not
//   have reached the disk.
// Every operation first calls `options.onOperation`, which may throw to inject a failure, or
// take a `crash` snapshot to model a crash right before that operation.

import { assert } from "../core/assert.ts";
import type { Disk, FileHandle } from "./disk.ts";

export type DiskOperation = "makeDirectory" | "list" | "create" | "open" | "size" | "read" | "write" | "truncate" | "sync" | "syncDirectory" | "close" | "remove";

export interface MemoryDiskOptions {
  /** A number in [0, 1); used by `crash("power")` only. */
  readonly random?: () => number;
  /** Called before every operation; throw to make the operation fail. */
  readonly onOperation?: (operation: DiskOperation, path: string) => void;
}

export type CrashMode = "process" | "power";

/** How a power failure treats what was not synced; random choices when absent. */
export interface PowerLoss {
  /** Whether a name created or removed since its directory's last sync keeps its new state. */
  readonly nameChangeSurvives?: (path: string) => boolean;
  /** Whether a file keeps any byte written after its last sync. */
  readonly unsyncedBytesSurvive?: boolean;
}

class MemoryFile {
  data: Uint8Array;
  length: number;
  durable: Uint8Array;

  constructor(current: Uint8Array, durable: Uint8Array) {
    this.data = current.slice();
    this.length = current.length;
    this.durable = durable;
  }

  get current(): Uint8Array {
    return this.data.subarray(0, this.length);
  }

  reserve(length: number): void {
    if (length <= this.data.length) return;
    const grown = new Uint8Array(Math.max(length, this.data.length * 2, 4096));
    grown.set(this.current);
    this.data = grown;
  }
}

export class MemoryDisk implements Disk {
  private readonly directories = new Set<string>();
  /** The names reads see. */
  private readonly names = new Map<string, MemoryFile>();
  /** The names as of each directory's last sync. */
  private readonly durableNames = new Map<string, MemoryFile>();
  private readonly handles = new Map<FileHandle, { readonly path: string; readonly file: MemoryFile }>();
  private nextHandle = 3;
  private readonly random: () => number;
  private readonly onOperation: (operation: DiskOperation, path: string) => void;
  /** Operations run so far, for tests that crash or fail at the n-th one. */
  operations = 0;

  constructor(options: MemoryDiskOptions = {}) {
    this.random = options.random ?? Math.random;
    this.onOperation = options.onOperation ?? (() => undefined);
  }

  // ---- Disk ---------------------------------------------------------------------------

  makeDirectory(directory: string): void {
    this.before("makeDirectory", directory);
    this.directories.add(directory);
  }

  list(directory: string): string[] {
    this.before("list", directory);
    if (!this.directories.has(directory)) throw new Error(`ENOENT: no such directory ${directory}`);
    const prefix = `${directory}/`;
    return [...this.names.keys()].filter((path) => path.startsWith(prefix)).map((path) => path.slice(prefix.length));
  }

  create(path: string): FileHandle {
    this.before("create", path);
    this.checkParent(path);
    if (this.names.has(path)) throw new Error(`EEXIST: ${path} exists`);
    const file = new MemoryFile(new Uint8Array(0), new Uint8Array(0));
    this.names.set(path, file);
    return this.handle(path, file);
  }

  open(path: string): FileHandle {
    this.before("open", path);
    const file = this.names.get(path);
    if (file === undefined) throw new Error(`ENOENT: no such file ${path}`);
    return this.handle(path, file);
  }

  size(handle: FileHandle): number {
    const { path, file } = this.file(handle);
    this.before("size", path);
    return file.length;
  }

  read(handle: FileHandle, buffer: Uint8Array, options: { offset: number; length: number; position: number }): number {
    const { path, file } = this.file(handle);
    this.before("read", path);
    const { offset, length, position } = options;
    assert(offset >= 0 && length >= 0 && offset + length <= buffer.length && position >= 0, "a read within the buffer");
    const count = Math.max(0, Math.min(length, file.length - position));
    buffer.set(file.data.subarray(position, position + count), offset);
    return count;
  }

  write(handle: FileHandle, bytes: Uint8Array, position: number): void {
    const { path, file } = this.file(handle);
    this.before("write", path);
    assert(position >= 0, "a write at a position");
    file.reserve(position + bytes.length);
    // Writing past the end leaves a hole of zeros, as a sparse file reads.
    if (position > file.length) file.data.fill(0, file.length, position);
    file.data.set(bytes, position);
    file.length = Math.max(file.length, position + bytes.length);
  }

  truncate(handle: FileHandle, length: number): void {
    const { path, file } = this.file(handle);
    this.before("truncate", path);
    file.reserve(length);
    if (length > file.length) file.data.fill(0, file.length, length);
    file.length = length;
  }

  async sync(handle: FileHandle): Promise<void> {
    const { path, file } = this.file(handle);
    this.before("sync", path);
    // What was written before the call is durable when it returns; let others run meanwhile,
    // as a real fsync runs on another thread.
    const content = file.current.slice();
    await Promise.resolve();
    file.durable = content;
  }

  async syncDirectory(directory: string): Promise<void> {
    this.before("syncDirectory", directory);
    const prefix = `${directory}/`;
    const current = [...this.names].filter(([path]) => path.startsWith(prefix));
    await Promise.resolve();
    for (const path of [...this.durableNames.keys()]) if (path.startsWith(prefix)) this.durableNames.delete(path);
    for (const [path, file] of current) this.durableNames.set(path, file);
  }

  close(handle: FileHandle): void {
    const { path } = this.file(handle);
    this.before("close", path);
    this.handles.delete(handle);
  }

  remove(path: string): void {
    this.before("remove", path);
    if (!this.names.delete(path)) throw new Error(`ENOENT: no such file ${path}`);
  }

  // ---- simulation -----------------------------------------------------------------------

  /** What survives a crash right now, as a new disk with no open files. */
  crash(mode: CrashMode, options: MemoryDiskOptions & PowerLoss = {}): MemoryDisk {
    const after = new MemoryDisk(options);
    for (const directory of this.directories) after.directories.add(directory);
    if (mode === "process") {
      for (const [path, file] of this.names) after.install(path, file.current, file.durable);
      return after;
    }
    const paths = new Set([...this.names.keys(), ...this.durableNames.keys()]);
    for (const path of [...paths].sort()) {
      const now = this.names.get(path);
      const then = this.durableNames.get(path);
      // A name changed since its directory's last sync reached the disk, or did not.
      const survives = options.nameChangeSurvives?.(path) ?? this.random() < 0.5;
      const file = now === then ? now : survives ? now : then;
      if (file === undefined) continue;
      const content = options.unsyncedBytesSurvive === false ? file.durable.slice() : this.survivingBytes(file);
      after.install(path, content, content);
    }
    return after;
  }

  /** Every path and its bytes as reads see them, for tests that inspect or damage files. */
  snapshot(): Map<string, Uint8Array> {
    return new Map([...this.names].map(([path, file]) => [path, file.current.slice()]));
  }

  /** Replaces a file's bytes, durably (a test damaging the disk behind the log's back). */
  replace(path: string, bytes: Uint8Array): void {
    const file = this.names.get(path);
    assert(file !== undefined, `no file ${path}`);
    file.data = bytes.slice();
    file.length = bytes.length;
    file.durable = bytes.slice();
  }

  /** Open handles: a log that closed cleanly leaves none. */
  get openFiles(): number {
    return this.handles.size;
  }

  private survivingBytes(file: MemoryFile): Uint8Array {
    const durable = file.durable;
    const current = file.current;
    let common = 0;
    const shorter = Math.min(durable.length, current.length);
    while (common < shorter && durable[common] === current[common]) common++;
    if (common < durable.length) {
      // Rewritten or truncated since the sync: the old bytes, or the new ones, survive.
      if (this.random() < 0.5) return durable.slice();
      return current.slice(0, common + Math.floor(this.random() * (current.length - common + 1)));
    }
    const length = durable.length + Math.floor(this.random() * (current.length - durable.length + 1));
    const bytes = current.slice(0, length);
    if (length > durable.length && this.random() < 0.3) {
      // A torn write: the last few unsynced bytes are zeros or noise.
      const from = Math.max(durable.length, length - 1 - Math.floor(this.random() * 512));
      const noise = this.random() < 0.5;
      for (let i = from; i < length; i++) bytes[i] = noise ? Math.floor(this.random() * 256) : 0;
    }
    return bytes;
  }

  private install(path: string, current: Uint8Array, durable: Uint8Array): void {
    const file = new MemoryFile(current, durable.slice());
    this.names.set(path, file);
    this.durableNames.set(path, file);
  }

  private before(operation: DiskOperation, path: string): void {
    this.operations++;
    this.onOperation(operation, path);
  }

  private handle(path: string, file: MemoryFile): FileHandle {
    const handle = this.nextHandle++;
    this.handles.set(handle, { path, file });
    return handle;
  }

  private file(handle: FileHandle): { readonly path: string; readonly file: MemoryFile } {
    const entry = this.handles.get(handle);
    if (entry === undefined) throw new Error(`EBADF: handle ${handle} is not open`);
    return entry;
  }

  private checkParent(path: string): void {
    const slash = path.lastIndexOf("/");
    if (slash <= 0 || !this.directories.has(path.slice(0, slash))) throw new Error(`ENOENT: no directory for ${path}`);
  }
}
