// A replica removed from its cell leaves it in the colony world only once the removal has
// taken effect: a change chosen at slot i decides slots from i + alpha, and until then the
// removed member still votes for the slots between, as a real node's replica does. Leaving at
// once (as the world did) took a voter from a membership that still needed it: with a cut
// between four and four members of an eight-member cell in the middle of a change, the cell
// stalled where Paxos would not have (seed 20200225 of the colony evaluation, half row cut
// off). After leaving, the replica answers its peers still (it may be the only one to have
// applied the slots after its removal), and clients get "not hosted" with a pointer.

import { expect, test } from "bun:test";
import { ColonyWorld } from "../../bench/colony/world.ts";
import type { CommandResult } from "../../src/core/messages.ts";
import { cluster, increment, settle, topology, where } from "./support.ts";

test("a removed replica votes until its removal takes effect, then leaves and keeps the replica to answer its peers", async () => {
  const w = new ColonyWorld({ seed: 9, topology, cluster, control: { color: "blue", size: 7, graceMs: 60_000, passMs: 500, stepsPerPassMax: 8, followClients: false } });
  const cellNodes = [0, 3, 6, 9, 12, 15, 18];
  w.createCell("vol", "0000000000000001", cellNodes, { instance: where, primary: where, replica: where });
  await w.runUntil(2_000);
  const client = w.addClient("c", 1);
  const write = () => settle<CommandResult | null>(w, (done) => client.call("vol", { kind: "tx", tx: increment }, 5_000, done), 10_000, 20);
  expect((await write())?.status).toBe("committed");
  const leaving = w.nodes[cellNodes[6] as number];
  if (leaving === undefined) throw new Error("no such node");
  expect(await settle<boolean>(w, (done) => w.change("vol", { kind: "removeMember", node: leaving.identity }, done), 10_000, 20)).toBe(true);
  await w.runUntil(w.now() + 500);
  // Chosen and applied everywhere, not in effect yet: no slot after it was chosen.
  expect(leaving.replicas.get("vol")?.cellState?.latestMembers()).not.toContain(leaving.identity);
  expect(leaving.replicas.has("vol")).toBe(true);
  expect(leaving.left.has("vol")).toBe(false);
  // Writes carry the cell past the window: then it leaves, and keeps the replica for its peers.
  for (let i = 0; i < 5; i++) expect((await write())?.status).toBe("committed");
  await w.runUntil(w.now() + 500);
  expect(leaving.replicas.has("vol")).toBe(false);
  expect(leaving.left.get("vol")?.applied).toBeGreaterThan(0);
  expect(w.stats.leaves).toBe(1);
});
