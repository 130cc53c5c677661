// A reproduction, run by hand (`bun test/cluster/nemesis-repro-pending.ts`, after `npm run
// build`), of what the nemesis found with clients that overlap their commands: a command the
// cell refused as `tooManyPending` is applied later by a copy of it, although its client was
// told it was refused. It exits 1 when that happens, 0 when the refusal holds.
//
// The session remembers the answers of every command at or above the client's lowest
// unanswered one (its `acked` mark), at most 64. One command the client still waits for pins
// that mark, so 64 answered commands after it fill the session, and the next is refused:
// without being remembered, because the refusal is not a result of carrying it out. Once the
// pinning command is answered, the mark moves (here to a second command still waited for),
// answers below it are forgotten, and a copy of the refused command is carried out like a new
// one. The copy here is the client's own frame, sent again after the nodes restarted (their
// replay guards forgot it); a forced retry in a paused replica's socket buffer, or a
// proposal re-made by a new leader, would do the same.

import { utf8 } from "../../src/core/value.ts";
import { ClientProxy, carried } from "./nemesis-proxy.ts";
import { ProcessColony } from "./support.ts";

const colony = await ProcessColony.start(3);
try {
  const cell = "vol-pending";
  const admin = await colony.client("admin");
  await admin.create(cell);
  admin.close();
  const keys = await colony.keys("client.json");
  const proxy = await ClientProxy.open(colony.endpoints);
  const victim = await colony.client("victim", "client.json", { nodes: proxy.endpoints, deadlineMs: 120_000 });
  const put = (key: string) => victim.transact(cell, { reads: [], conditions: [], writes: [{ key, op: "put", value: utf8(key) }] });
  await victim.transact(cell, { reads: [], conditions: [], writes: [] }); // seq 1: opens the session

  // Commands 2 and 40 never reach the cell (yet): the client keeps waiting for them.
  const stuck = new Set([2, 40]);
  proxy.dropRequestIf = (d) => carried(d, keys).requests.some((r) => r.session !== 0 && stuck.has(r.seq));
  const second = put("stuck-2").catch((e: unknown) => e);
  for (let i = 3; i < 40; i++) await put(`k${i}`);
  const fortieth = put("stuck-40").catch((e: unknown) => e);
  for (let i = 41; i < 68; i++) await put(`k${i}`);
  const mark = proxy.mark;
  const refused = await victim.transact(cell, { reads: [], conditions: [], writes: [{ key: "c", op: "increment", by: 1n }] }); // seq 68
  console.log(`command 68 (an increment of c) was answered: ${JSON.stringify(refused)}`);
  const copies = proxy.recorded((d) => d.index >= mark && d.direction === "request" && carried(d, keys).requests.some((r) => r.seq === 68));

  // Command 2 gets through; the next command tells the cell the client now waits for 40 and later.
  stuck.delete(2);
  console.log(`command 2: ${JSON.stringify(await second)}`);
  await put("k69");

  // Every node restarts (their replay guards forget every frame), and the refused command's
  // own frame arrives again, byte for byte.
  for (const id of colony.ids) await colony.restart(id);
  for (const copy of copies) proxy.resend(copy);
  await Bun.sleep(3_000);
  const reader = await colony.client("reader", "client.json");
  const after = await reader.transact(cell, { reads: ["c"], conditions: [], writes: [] });
  const value = after.status === "committed" ? after.reads[0] : null;
  console.log(`c after the copy: ${String(value)}`);
  stuck.clear();
  await fortieth;
  reader.close();
  victim.close();
  proxy.close();
  if (refused.status === "rejected" && refused.reason === "tooManyPending" && value === 1n) {
    console.log("REPRODUCED: the cell refused command 68 as tooManyPending, then applied a copy of it");
    process.exitCode = 1;
  } else {
    console.log("not reproduced: the refusal held");
  }
} finally {
  await colony.stop();
}
