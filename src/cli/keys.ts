// `physalia keys`: writes and rotates a colony's key files. A key directory holds one node
// key file per color (`node-<color>.json`), the client key file (`client.json`) and the
// control key file (`control.json`); see src/wire/keyfile.ts for the format. Secrets come
// from crypto.getRandomValues, files are written with mode 0600, and `generate` never
// overwrites a file.

import { open, readFile, readdir, rename, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { isPlainId } from "../wire/ids.ts";
import { type KeyFile, type RingSpec, formatKeyFile, parseKeyFileSpec, ringsOf } from "../wire/keyfile.ts";
import { KeyFileError, type Role, type Secret } from "../wire/keyring.ts";
import { UsageError, parseFlags } from "./args.ts";
import { CliError, readTopology } from "./colony.ts";

export const keysUsage = `usage:
  physalia keys generate --out DIR [--colors C,...] [--topology FILE]
      write node-<color>.json for each color (default: the topology's colors, else blue),
      client.json and control.json, with fresh random secrets; never overwrites a file
  physalia keys rotate --dir DIR --role node|client|control [--color C]
      add a new key as current and keep the old one, in every file that holds the ring
      (a client or control ring is in its own file and in every node file)
  physalia keys retire --dir DIR --role node|client|control [--color C]
      drop the previous key, once every holder has the new one
a rotation: rotate, restart every holder of the ring with the new files one by one, retire,
restart them again. Holders with either file verify each other's frames throughout.`;

const secretBytes = 32;

export function randomSecret(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(secretBytes));
}

/** A key id none of `taken` uses. */
export function freshKeyId(taken: ReadonlySet<number>): number {
  for (;;) {
    const id = crypto.getRandomValues(new Uint32Array(1))[0] as number;
    if (!taken.has(id)) return id;
  }
}

function newRing(taken: Set<number>): RingSpec {
  const id = freshKeyId(taken);
  taken.add(id);
  return { current: id, keys: [{ id, secret: randomSecret() }] };
}

export function nodeKeyFileName(color: string): string {
  return `node-${color}.json`;
}

/** A colony's key files, by file name: one node file per color, client.json and control.json. */
export function generateKeyFiles(colors: readonly string[]): Map<string, KeyFile> {
  const taken = new Set<number>();
  const client = newRing(taken);
  const control = newRing(taken);
  const files = new Map<string, KeyFile>();
  for (const color of colors) files.set(nodeKeyFileName(color), { kind: "node", color, node: newRing(taken), client, control });
  files.set("client.json", { kind: "client", client });
  files.set("control.json", { kind: "control", control });
  return files;
}

/** Writes a new file with mode 0600; refuses an existing one. */
async function writeNew(path: string, text: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, "wx", 0o600);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "EEXIST") throw new CliError(`Cannot write ${path}: it exists, and keys are never overwritten`);
    throw new CliError(`Cannot write ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes a colony's key files into `dir` (created if missing); refuses if any of them exists. */
export async function writeKeyDirectory(dir: string, colors: readonly string[]): Promise<string[]> {
  for (const color of colors) if (!isPlainId(color)) throw new UsageError(`${JSON.stringify(color)} is not a color name (1 to 64 of [A-Za-z0-9._-])`);
  if (new Set(colors).size !== colors.length) throw new UsageError("a color is listed twice");
  const files = generateKeyFiles(colors);
  let existing: Set<string>;
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    existing = new Set(await readdir(dir));
  } catch (error) {
    throw new CliError(`Cannot write keys to ${dir}: ${error instanceof Error ? error.message : String(error)}`);
  }
  for (const name of files.keys()) if (existing.has(name)) throw new CliError(`Cannot write ${join(dir, name)}: it exists, and keys are never overwritten`);
  for (const [name, file] of files) await writeNew(join(dir, name), formatKeyFile(file));
  return [...files.keys()];
}

async function readKeyFileSpec(path: string): Promise<KeyFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new CliError(`Cannot read key file ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const file = parseKeyFileSpec(text);
  if (file instanceof KeyFileError) throw new CliError(`${file.message} (in ${path})`);
  return file;
}

/** Every key file of a key directory, by file name. */
async function readKeyDirectory(dir: string): Promise<Map<string, KeyFile>> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n === "client.json" || n === "control.json" || /^node-.+\.json$/.test(n)).sort();
  } catch (error) {
    throw new CliError(`Cannot read key directory ${dir}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (names.length === 0) throw new CliError(`Cannot rotate keys in ${dir}: it holds no key files (run physalia keys generate)`);
  const files = new Map<string, KeyFile>();
  for (const name of names) files.set(name, await readKeyFileSpec(join(dir, name)));
  return files;
}

function withRing(file: KeyFile, role: Role, ring: RingSpec): KeyFile {
  return { ...file, [role]: ring } as KeyFile;
}

function sameRing(a: RingSpec, b: RingSpec): boolean {
  const key = (r: RingSpec) => JSON.stringify([r.current, r.keys.map((k) => [k.id, [...k.secret]])]);
  return key(a) === key(b);
}

/** Rotates or retires one ring in every file of the directory that holds it. */
export async function changeRing(dir: string, options: { readonly role: Role; readonly color?: string; readonly action: "rotate" | "retire" }): Promise<string[]> {
  const { role, action } = options;
  const files = await readKeyDirectory(dir);
  const nodeFiles = [...files].filter(([, f]) => f.kind === "node");
  let color = options.color;
  if (role === "node" && color === undefined) {
    if (nodeFiles.length !== 1) throw new UsageError("--color C is required: the directory has node files of several colors");
    color = (nodeFiles[0]?.[1] as KeyFile & { kind: "node" }).color;
  }
  if (role !== "node" && color !== undefined) throw new UsageError("--color is only for the node role");
  const holders = [...files].filter(([, f]) => ringsOf(f).some(([r]) => r === role) && (role !== "node" || (f.kind === "node" && f.color === color)));
  if (holders.length === 0) throw new CliError(`Cannot ${action} the ${role}${color === undefined ? "" : ` ${color}`} ring: no file in ${dir} holds it`);
  const ringIn = (file: KeyFile) => (ringsOf(file).find(([r]) => r === role) as [Role, RingSpec])[1];
  const ring = ringIn((holders[0] as [string, KeyFile])[1]);
  for (const [name, file] of holders) {
    if (!sameRing(ringIn(file), ring)) throw new CliError(`Cannot ${action} the ${role} ring: ${name} holds a different ${role} ring than ${(holders[0] as [string, KeyFile])[0]}`);
  }
  let next: RingSpec;
  if (action === "rotate") {
    if (ring.keys.length > 1) throw new CliError(`Cannot rotate the ${role} ring: it already has a previous key (a rotation is rolling out); retire it first`);
    const taken = new Set<number>();
    for (const file of files.values()) for (const [, r] of ringsOf(file)) for (const k of r.keys) taken.add(k.id);
    const id = freshKeyId(taken);
    next = { current: id, keys: [{ id, secret: randomSecret() }, ...ring.keys] };
  } else {
    if (ring.keys.length < 2) throw new CliError(`Cannot retire a key of the ${role} ring: it has only its current key`);
    next = { current: ring.current, keys: ring.keys.filter((k: Secret) => k.id === ring.current) };
  }
  // Each file is replaced whole: a new file beside it, then a rename over it.
  for (const [name, file] of holders) {
    const path = join(dir, name);
    await writeNew(`${path}.new`, formatKeyFile(withRing(file, role, next)));
    await rename(`${path}.new`, path);
  }
  return holders.map(([name]) => name);
}

const roleNames: readonly string[] = ["node", "client", "control"];

export async function keysCommand(args: string[], print: (line: string) => void = console.log): Promise<number> {
  const [action, ...rest] = args;
  if (action === "generate") {
    const flags = parseFlags(rest, { out: { type: "string" }, colors: { type: "string" }, topology: { type: "string" } });
    const out = flags.out as string | undefined;
    if (out === undefined) throw new UsageError("--out DIR is required");
    let colors: string[];
    const topology = flags.topology === undefined ? null : await readTopology(flags.topology as string);
    if (flags.colors !== undefined) {
      colors = (flags.colors as string).split(",");
      const unknown = topology === null ? undefined : colors.find((c) => !topology.colors.includes(c));
      if (unknown !== undefined) throw new UsageError(`color ${unknown} is not in the topology (${topology?.colors.join(", ")})`);
    } else colors = topology === null ? ["blue"] : [...topology.colors];
    const written = await writeKeyDirectory(out, colors);
    print(`wrote ${written.map((name) => join(out, name)).join(", ")}`);
    return 0;
  }
  if (action === "rotate" || action === "retire") {
    const flags = parseFlags(rest, { dir: { type: "string" }, role: { type: "string" }, color: { type: "string" } });
    const dir = flags.dir as string | undefined;
    const role = flags.role as string | undefined;
    if (dir === undefined) throw new UsageError("--dir DIR is required");
    if (role === undefined || !roleNames.includes(role)) throw new UsageError("--role must be node, client or control");
    const changed = await changeRing(dir, { role: role as Role, action, ...(flags.color === undefined ? {} : { color: flags.color as string }) });
    print(`${action === "rotate" ? "added a new current key to" : "dropped the previous key from"} the ${role} ring in ${changed.join(", ")}`);
    return 0;
  }
  throw new UsageError(action === undefined ? "missing action: generate, rotate or retire" : `unknown action ${JSON.stringify(action)}`);
}
