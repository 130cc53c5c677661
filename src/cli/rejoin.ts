// Rejoining after a damaged log. A node whose log lost synced records must never vote with
// state it does not have, so it starts on a fresh data directory, which has a new
// incarnation and so a new identity: to every cell it was in, it is a stranger. For each such
// cell it then asks the cell to add its new identity (an empty replica that the cell teaches)
// and to remove the former one, one membership change at a time.
//
// The intent is written down before anything is done (`REJOIN.json` in the new data
// directory, replaced atomically and synced), each cell is struck from it only once done,
// and a node that finds the file at start goes on where it stopped: a restart in the middle
// of a replacement never leaves the node out of a cell for good.
//
// A cell in the control plane's registry is the control plane's to repair: it sees the
// former identity answer as a stranger, counts it dead at once (no grace period) and replaces
// it by a node the placer picks, one change at a time. The node then leaves such a cell alone
// (two agents changing one cell's members at once would only add churn) and rejoins by itself
// only the cells that no control plane looks after.

import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import { PhysaliaClient } from "../client/client.ts";
import { registryPrefix } from "../control/registry.ts";
import type { CommandResult } from "../core/messages.ts";
import type { Endpoint, Transport } from "../transport/transport.ts";
import { isNodeId, nodePart } from "../wire/ids.ts";
import type { KeySet } from "../wire/keyring.ts";

const intentFile = "REJOIN.json";

export interface RejoinIntent {
  /** The identity the cells know this node by, from the damaged data directory. */
  readonly former: string;
  readonly cells: readonly string[];
}

/** The intent a data directory holds, or null; a file that cannot be read is an error, never ignored. */
export function readIntent(directory: string): RejoinIntent | null {
  const path = join(directory, intentFile);
  if (!existsSync(path)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new Error(`Cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const intent = parsed as { version?: unknown; former?: unknown; cells?: unknown };
  if (intent.version !== 1 || typeof intent.former !== "string" || !isNodeId(intent.former) || !Array.isArray(intent.cells) || !intent.cells.every((c) => typeof c === "string")) {
    throw new Error(`Cannot read ${path}: not a rejoin intent (version 1, former, cells)`);
  }
  return { former: intent.former, cells: intent.cells as string[] };
}

/** Replaces the intent file atomically: a temporary file, synced, renamed, and the directory synced. */
export function writeIntent(directory: string, intent: RejoinIntent): void {
  const path = join(directory, intentFile);
  const temporary = `${path}.tmp`;
  const fd = openSync(temporary, "w", 0o600);
  try {
    writeSync(fd, `${JSON.stringify({ version: 1, former: intent.former, cells: intent.cells })}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  const dir = openSync(directory, "r");
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

export interface RejoinOptions {
  readonly directory: string;
  /** This node's identity now. */
  readonly identity: string;
  readonly keys: KeySet;
  readonly nodes: ReadonlyMap<string, Endpoint>;
  readonly transport: Transport;
  readonly print: (line: string) => void;
  readonly retryMs?: number;
  /** The color's control cell: cells registered there are left to the control plane. */
  readonly controlCell?: string;
}

export interface Rejoiner {
  /** Adds a cell to the intent (one a peer named), unless it is there already. */
  add(cell: string): void;
  readonly pending: readonly string[];
  stop(): void;
}

/** Works through the directory's intent, one cell at a time, until every cell is done. */
export function startRejoining(options: RejoinOptions): Rejoiner {
  const { directory, identity, print } = options;
  const initial = readIntent(directory);
  if (initial === null) throw new Error(`Cannot rejoin: ${directory} holds no ${intentFile}`);
  const former = initial.former;
  const cells = [...initial.cells];
  const node = nodePart(identity);
  const client = new PhysaliaClient({ id: `${node}.rejoin`, nodes: options.nodes, keys: options.keys, transport: options.transport, deadlineMs: 30_000 });
  let running = false;
  let stopped = false;
  const save = () => writeIntent(directory, { former, cells });

  const change = async (cell: string, kind: "addMember" | "removeMember", member: string): Promise<CommandResult> => {
    const result = await client.configure(cell, { kind, node: member });
    // Already done (by an earlier run that stopped before striking the cell out) is done.
    if (result.status === "rejected" && result.reason === "configInvalid" && /already a member|is not a member/.test(result.detail)) return result;
    if (result.status !== "configured") throw new Error(`${kind === "addMember" ? "adding" : "removing"} ${member} was refused: ${"detail" in result ? result.detail : result.status}`);
    return result;
  };
  const registered = async (cell: string): Promise<boolean> => {
    if (options.controlCell === undefined || cell === options.controlCell) return false;
    // No control cell (no control plane in this colony) answers as not registered, quickly.
    const known = await client.describe(options.controlCell).catch(() => null);
    if (known === null) return false;
    const read = await client.transact(options.controlCell, { reads: [`${registryPrefix}${cell}`], conditions: [], writes: [] });
    if (read.status !== "committed") throw new Error(`cannot read the control plane's registry (${read.status})`);
    return read.reads[0] !== null && read.reads[0] !== undefined;
  };
  const rejoinOne = async (cell: string): Promise<string> => {
    if (await registered(cell)) return "left to the control plane, which replaces the former identity";
    const known = await client.describe(cell);
    if (known === null) throw new Error("no replica of it answered");
    const members = known.hosted.members;
    if (!members.includes(former) && members.includes(identity)) return "done already";
    if (!members.includes(former) && !members.includes(identity)) return `not a member (members: ${members.join(", ")})`;
    if (!members.includes(identity)) {
      await client.join(cell, node);
      const added = await client.configure(cell, { kind: "addMember", node: identity });
      if (added.status === "rejected" && added.reason === "configInvalid" && /at most/.test(added.detail)) {
        // A full cell: make room first.
        await change(cell, "removeMember", former);
        await change(cell, "addMember", identity);
        return "replaced";
      }
      if (added.status !== "configured" && !(added.status === "rejected" && /already a member/.test(added.detail))) {
        throw new Error(`adding ${identity} was refused: ${"detail" in added ? added.detail : added.status}`);
      }
    }
    await change(cell, "removeMember", former);
    return "replaced";
  };
  const drain = async () => {
    if (running) return;
    running = true;
    while (cells.length > 0 && !stopped) {
      const cell = cells[0] as string;
      try {
        const outcome = await rejoinOne(cell);
        print(`node ${node}: cell ${cell}: ${outcome === "replaced" ? `rejoined as ${identity}, in place of ${former}` : outcome}`);
        cells.shift();
        save();
      } catch (error) {
        print(`node ${node}: could not rejoin cell ${cell} (${error instanceof Error ? error.message : String(error)}); retrying later`);
        cells.push(cells.shift() as string);
        save();
        await new Promise((resolve) => setTimeout(resolve, options.retryMs ?? 5_000));
      }
    }
    running = false;
  };
  void drain();
  return {
    add(cell: string) {
      if (stopped || cells.includes(cell)) return;
      cells.push(cell);
      save();
      void drain();
    },
    get pending() {
      return cells;
    },
    stop() {
      stopped = true;
      client.close();
    },
  };
}
