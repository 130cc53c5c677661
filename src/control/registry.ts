// The control plane's registry: the cells it repairs and moves, one key `cell/<name>` each in
// the color's control cell (the value: the client the cell was created for). The control
// plane, both views of the colony and `physalia rollout` read it with the one scan below.

import type { PhysaliaClient } from "../client/client.ts";

export const registryPrefix = "cell/";
/** The first key past every registry key ("/" + 1). */
const registryEnd = "cell0";

/**
 * Every registered cell's name, page by page. `complete` is false when a page was not
 * committed (the names read until then are returned); the views take what came, a tool that
 * must protect every cell refuses to go on.
 */
export async function readRegistry(client: PhysaliaClient, controlCell: string): Promise<{ names: string[]; complete: boolean }> {
  const names: string[] = [];
  for (let start = registryPrefix; ;) {
    const page = await client.transact(controlCell, { reads: [], conditions: [], writes: [], scan: { start, end: registryEnd, limit: 256 } });
    if (page.status !== "committed" || page.scan === undefined) return { names, complete: false };
    for (const [key] of page.scan.entries) names.push(key.slice(registryPrefix.length));
    if (page.scan.next === null) return { names, complete: true };
    start = page.scan.next;
  }
}

/** A page of registry entries with their values, from `start` (for passes that stop at a deadline). */
export async function registryPage(client: PhysaliaClient, controlCell: string, start: string): Promise<{ entries: readonly (readonly [string, unknown])[]; next: string | null } | null> {
  const page = await client.transact(controlCell, { reads: [], conditions: [], writes: [], scan: { start, end: registryEnd, limit: 256 } });
  if (page.status !== "committed" || page.scan === undefined) return null;
  return { entries: page.scan.entries.map(([key, value]) => [key.slice(registryPrefix.length), value] as const), next: page.scan.next };
}
