// A simulated disk for tests and the simworld. It keeps two versions of everything: what the
// page cache holds (what reads see) and what is durable (what survives a power failure). A
// file's data becomes durable at `sync`; a name (of a file or of a directory) at
// `syncDirectory` of the directory that holds it.
//
// `crash(mode)` returns a new disk holding what survives:
// - "process": the process died, the kernel did not; everything written survives.
// - "power": the machine lost power. Each file keeps its durable bytes; of what was written
//   after its last sync, either a random prefix survives (sometimes with its last bytes
//   zeroed or garbled: a torn sector), or the file's length reaches some point past its
//   durable length and each 512-byte sector of the unsynced part independently holds its new
//   bytes, zeros or noise (sectors reach the platter in any order). Each name created,
//   removed or renamed since its directory's last sync may or may not have reached the disk;
//   a directory whose name did not survive takes everything in it along.
// Every operation first calls `options.onOperation`, which may throw to inject a failure, or
// take a `crash` snapshot to model a crash right before that operation.

import { assert } from "../core/assert.ts";
import type { Disk, FileHandle } from "./disk.ts";

export type DiskOperation =
  | "makeDirectory"
  | "exists"
  | "list"
  | "create"
  | "open"
  | "size"
  | "read"
  | "write"
  | "truncate"
  | "sync"
  | "syncDirectory"
  | "close"
  | "remove"
  | "rename";

export interface MemoryDiskOptions {
  /** A number in [0, 1); used by `crash("power")` only. */
  readonly random?: () => number;
  /** Called before every operation; throw to make the operation fail. */
  readonly onOperation?: (operation: DiskOperation, path: string) => void;
}

export type CrashMode = "process" | "power";

/** How a power failure treats what was not synced; random choices when absent. */
export interface PowerLoss {
  /** Whether a name created, removed or renamed since its directory's last sync keeps its new state. */
  readonly nameChangeSurvives?: (path: string) => boolean;
  /** Whether a file keeps any byte written after its last sync. */
  readonly unsyncedBytesSurvive?: boolean;
  /** How unsynced bytes survive: a prefix, or sectors in any order. */
  readonly unsyncedBytesModel?: "prefix" | "sectors";
}

/** The size of a sector: the unit a disk writes atomically, or tears. */
export const sectorBytes = 512;

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

/** The directory a path is in: "/" for "/log", "." for a bare name. */
function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}

function within(path: string, directory: string): boolean {
  return path.startsWith(directory === "/" ? "/" : `${directory}/`);
}

function moved(path: string, from: string, to: string): string {
  return path === from ? to : `${to}${path.slice(from.length)}`;
}

export class MemoryDisk implements Disk {
  /** Directories reads see; the root always exists. */
  private readonly directories = new Set<string>(["/", "."]);
  /** Directories whose names are durable in their parents. */
  private readonly durableDirectories = new Set<string>(["/", "."]);
  /** The names reads see. */
  private readonly names = new Map<string, MemoryFile>();
  /** The names as of each directory's last sync. */
  private readonly durableNames = new Map<string, MemoryFile>();
  /** Directory renames not yet made durable by a sync of the parent: a power failure undoes each, or not, whole. */
  private readonly pendingRenames: { readonly from: string; readonly to: string }[] = [];
  private readonly handles = new Map<FileHandle, { readonly path: string; readonly file: MemoryFile }>();
  private nextHandle = 3;
  /** Files with a sync under way. */
  private readonly syncing = new Set<FileHandle>();
  private readonly random: () => number;
  private readonly onOperation: (operation: DiskOperation, path: string) => void;
  /** Operations run so far, for tests that crash or fail at the n-th one. */
  operations = 0;

  constructor(options: MemoryDiskOptions = {}) {
    this.random = options.random ?? Math.random;
    this.onOperation = options.onOperation ?? (() => undefined);
  }

  // ---- Disk ---------------------------------------------------------------------------

  makeDirectory(directory: string): string[] {
    this.before("makeDirectory", directory);
    const created: string[] = [];
    for (let at = directory; !this.directories.has(at); at = parentOf(at)) {
      if (this.names.has(at)) throw new Error(`ENOTDIR: ${at} is a file`);
      created.unshift(at);
    }
    for (const path of created) this.directories.add(path);
    return created;
  }

  exists(path: string): boolean {
    this.before("exists", path);
    return this.directories.has(path) || this.names.has(path);
  }

  list(directory: string): string[] {
    this.before("list", directory);
    if (!this.directories.has(directory)) throw new Error(`ENOENT: no such directory ${directory}`);
    const children = (paths: Iterable<string>) => [...paths].filter((path) => path !== directory && parentOf(path) === directory).map((path) => path.slice(path.lastIndexOf("/") + 1));
    return [...children(this.names.keys()), ...children(this.directories)];
  }

  create(path: string): FileHandle {
    this.before("create", path);
    this.checkParent(path);
    if (this.names.has(path) || this.directories.has(path)) throw new Error(`EEXIST: ${path} exists`);
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

  async sync(handle: FileHandle, _hint?: { readonly bytes: number }): Promise<void> {
    const { path, file } = this.file(handle);
    // The Disk contract: never two syncs of one file at once (the log's callers rely on it).
    if (this.syncing.has(handle)) throw new Error(`sync of ${path} while another sync of it is under way`);
    this.before("sync", path);
    // What was written before the call is durable when it returns; let others run meanwhile,
    // as a real fsync runs on another thread.
    const content = file.current.slice();
    this.syncing.add(handle);
    try {
      await Promise.resolve();
    } finally {
      this.syncing.delete(handle);
    }
    file.durable = content;
  }

  async syncDirectory(directory: string): Promise<void> {
    this.before("syncDirectory", directory);
    if (!this.directories.has(directory)) throw new Error(`ENOENT: no such directory ${directory}`);
    const files = [...this.names].filter(([path]) => parentOf(path) === directory);
    const directories = [...this.directories].filter((path) => path !== directory && parentOf(path) === directory);
    await Promise.resolve();
    for (const path of [...this.durableNames.keys()]) if (parentOf(path) === directory) this.durableNames.delete(path);
    for (const [path, file] of files) this.durableNames.set(path, file);
    for (const path of [...this.durableDirectories]) if (path !== directory && parentOf(path) === directory && !this.directories.has(path)) this.durableDirectories.delete(path);
    for (const path of directories) this.durableDirectories.add(path);
    for (let i = this.pendingRenames.length - 1; i >= 0; i--) if (parentOf(this.pendingRenames[i]!.to) === directory) this.pendingRenames.splice(i, 1);
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

  async removeLater(path: string): Promise<void> {
    // As a real unlink on the thread pool: others run meanwhile.
    await Promise.resolve();
    this.remove(path);
  }

  rename(from: string, to: string): void {
    this.before("rename", from);
    if (this.names.has(to) || this.directories.has(to)) throw new Error(`EEXIST: ${to} exists`);
    this.checkParent(to);
    const file = this.names.get(from);
    if (file !== undefined) {
      // A file's old and new names are two name changes, each durable with its directory's sync.
      this.names.delete(from);
      this.names.set(to, file);
      for (const entry of this.handles.values()) assert(entry.path !== from, `rename of an open file ${from}`);
      return;
    }
    if (!this.directories.has(from) || from === "/" || within(to, from)) throw new Error(`ENOENT: no such file or directory ${from}`);
    for (const entry of this.handles.values()) assert(!within(entry.path, from), `rename of a directory with open files ${from}`);
    this.moveDirectory(from, to);
    this.pendingRenames.push({ from, to });
  }

  private moveDirectory(from: string, to: string): void {
    // A directory moves whole: what is durable inside it stays durable, and the rename itself
    // is undone or kept, as one, by a power failure before the parent's next sync.
    const move = <T>(map: Map<string, T>) => {
      for (const [path, value] of [...map]) {
        if (!within(path, from)) continue;
        map.delete(path);
        map.set(moved(path, from, to), value);
      }
    };
    const moveSet = (set: Set<string>) => {
      for (const path of [...set]) {
        if (path !== from && !within(path, from)) continue;
        set.delete(path);
        set.add(moved(path, from, to));
      }
    };
    move(this.names);
    move(this.durableNames);
    moveSet(this.directories);
    moveSet(this.durableDirectories);
  }

  // ---- simulation -----------------------------------------------------------------------

  /** What survives a crash right now, as a new disk with no open files. */
  crash(mode: CrashMode, options: MemoryDiskOptions & PowerLoss = {}): MemoryDisk {
    const after = new MemoryDisk(options);
    if (mode === "process") {
      for (const directory of this.directories) after.directories.add(directory);
      for (const directory of this.directories) after.durableDirectories.add(directory);
      for (const [path, file] of this.names) after.install(path, file.current, file.durable);
      return after;
    }
    const survives = (path: string) => options.nameChangeSurvives?.(path) ?? this.random() < 0.5;
    // Directories first, outermost first: one whose name did not survive takes its contents along.
    const lost = new Set<string>();
    for (const directory of [...this.directories].sort((a, b) => a.length - b.length)) {
      const parentLost = lost.has(parentOf(directory));
      if (parentLost || (!this.durableDirectories.has(directory) && !survives(directory))) lost.add(directory);
      else after.directories.add(directory);
    }
    for (const directory of after.directories) after.durableDirectories.add(directory);
    const paths = new Set([...this.names.keys(), ...this.durableNames.keys()]);
    for (const path of [...paths].sort()) {
      if (!after.directories.has(parentOf(path))) continue;
      const now = this.names.get(path);
      const then = this.durableNames.get(path);
      // A name changed since its directory's last sync reached the disk, or did not.
      const file = now === then ? now : survives(path) ? now : then;
      if (file === undefined) continue;
      const content = options.unsyncedBytesSurvive === false ? file.durable.slice() : this.survivingBytes(file, options.unsyncedBytesModel);
      after.install(path, content, content);
    }
    // Renames of directories not yet durable: each is undone, or not, as a whole.
    for (const { from, to } of [...this.pendingRenames].reverse()) {
      if (!after.directories.has(to) || after.directories.has(from) || !after.directories.has(parentOf(from)) || survives(to)) continue;
      after.moveDirectory(to, from);
    }
    return after;
  }

  /** Every file and its bytes as reads see them, for tests that inspect or damage files. */
  snapshot(): Map<string, Uint8Array> {
    return new Map([...this.names].map(([path, file]) => [path, file.current.slice()]));
  }

  /** Directories reads see, the root excluded. */
  directoryNames(): string[] {
    return [...this.directories].filter((path) => path !== "/" && path !== ".").sort();
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

  private survivingBytes(file: MemoryFile, model: PowerLoss["unsyncedBytesModel"]): Uint8Array {
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
    const chosen = model ?? (this.random() < 0.5 ? "prefix" : "sectors");
    // With sectors in any order, the file's new length often reached the disk whole (it is
    // metadata, journaled apart from the data): then even the last sectors may survive alone.
    const whole = chosen === "sectors" && this.random() < 0.5;
    const length = whole ? current.length : durable.length + Math.floor(this.random() * (current.length - durable.length + 1));
    const bytes = current.slice(0, length);
    if (length === durable.length) return bytes;
    if (chosen === "prefix") {
      if (this.random() < 0.3) {
        // A torn write: the last few unsynced bytes are zeros or noise.
        const from = Math.max(durable.length, length - 1 - Math.floor(this.random() * sectorBytes));
        const noise = this.random() < 0.5;
        for (let i = from; i < length; i++) bytes[i] = noise ? Math.floor(this.random() * 256) : 0;
      }
      return bytes;
    }
    // The file's length reached the disk; its unsynced sectors did, or did not, each on its own.
    for (let sector = Math.floor(durable.length / sectorBytes) * sectorBytes; sector < length; sector += sectorBytes) {
      const from = Math.max(sector, durable.length);
      const to = Math.min(sector + sectorBytes, length);
      const roll = this.random();
      if (roll < 0.4) continue; // the new bytes
      for (let i = from; i < to; i++) bytes[i] = roll < 0.75 ? 0 : Math.floor(this.random() * 256);
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
    if (!this.directories.has(parentOf(path))) throw new Error(`ENOENT: no directory for ${path}`);
  }
}
