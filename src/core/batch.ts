// How client commands are packed into one log slot: in arrival order, up to a count and a
// byte budget, and never empty.

import { limits } from "../limits.ts";
import type { Command } from "./messages.ts";
import { utf8Bytes, valueBytes } from "./value.ts";

/** An estimate of a command's size in a log entry, for the batch byte budget. */
export function commandBytes(command: Command): number {
  const op = command.op;
  const bytes = 24;
  if (op.kind === "config") return bytes + 64 + utf8Bytes(op.change.node);
  if (op.kind === "openSession") return bytes + 8 + utf8Bytes(op.client);
  if (op.kind === "closeSession") return bytes;
  if (op.kind === "lease") return bytes + 16 + utf8Bytes(op.name) + utf8Bytes(op.holder);
  let txBytes = bytes;
  const tx = op.tx;
  for (const key of tx.reads) txBytes += utf8Bytes(key) + 2;
  for (const c of tx.conditions) txBytes += utf8Bytes(c.key) + 4 + ("value" in c ? valueBytes(c.value) : 0);
  for (const w of tx.writes) txBytes += utf8Bytes(w.key) + 4 + (w.op === "put" ? valueBytes(w.value) : w.op === "increment" ? valueBytes(w.by) : 0);
  return txBytes;
}

/**
 * Takes commands from the front of `queue` into one batch, moving each into `taken` (the
 * commands awaiting their slot), and returns the batch's commands.
 */
export function takeBatch<T extends { readonly command: Command }>(queue: Map<string, T>, taken: Map<string, T>): Command[] {
  const commands: Command[] = [];
  let bytes = 0;
  for (const [key, entry] of queue) {
    const size = commandBytes(entry.command);
    if (commands.length > 0 && (commands.length >= limits.batchCommandsMax || bytes + size > limits.batchBytesMax)) break;
    commands.push(entry.command);
    bytes += size;
    queue.delete(key);
    taken.set(key, entry);
  }
  return commands;
}
