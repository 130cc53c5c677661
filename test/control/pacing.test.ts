// How the control plane paces repairs and what a pass waits for, against a scripted client
// and view whose answers the test releases one by one: a pass starts its changes and returns
// without waiting for them, never runs two changes of one cell at once, keeps within its
// budgets, and does not plan a cell from a view read while that cell was changing. And the
// probe view: a silent node's probe does not hold up a pass, and the registry is read again
// in the background.

import { describe, expect, test } from "bun:test";
import type { PhysaliaClient } from "../../src/client/client.ts";
import { ProbeView } from "../../src/control/probe.ts";
import { type ColonyView, ControlPlane, type KnownCell, type NodeHealth, clientsKey, controlCellOf } from "../../src/control/service.ts";
import { parseTopology } from "../../src/control/topology/parse.ts";
import type { Topology } from "../../src/control/topology/types.ts";
import type { ConfigChange } from "../../src/core/messages.ts";
import { utf8 } from "../../src/core/value.ts";

// One row of nine nodes in three racks and three power domains.
function topology(): Topology {
  const nodes = Array.from({ length: 9 }, (_, i) => ({ id: `n${i}`, address: `127.0.0.1:${7600 + i}`, row: "r1", rack: `k${i % 3}`, power: `p${i % 3}`, color: "blue", capacity: 1000 }));
  const parsed = parseTopology(JSON.stringify({ version: 1, powerDomains: ["p0", "p1", "p2"], colors: ["blue"], nodes, clients: [] }));
  if (parsed instanceof Error) throw parsed;
  return parsed;
}

const identity = (node: string) => `${node}~0000000000000001`;

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: Error): void;
}

function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => undefined;
  let reject: (error: Error) => void = () => undefined;
  const promise = new Promise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

/** Lets every promise that can settle now settle (turns of the event loop, no clock). */
async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A client that grants the lease, has no creation requests, and holds every join until the test releases it. */
class ScriptedClient {
  readonly joins: { cell: string; node: string; answer: Deferred<string> }[] = [];
  readonly configures: { cell: string; change: ConfigChange }[] = [];

  async lease(): Promise<unknown> {
    return { status: "lease", granted: true, held: true, holder: "control-a", validUntil: Number.MAX_SAFE_INTEGER, validForMs: 3_000 };
  }

  /** Reads of cells' clients held until the test releases them (when set). */
  clientsHold: Deferred<void> | null = null;
  clientsReads = 0;

  async transact(cell: string, tx: { reads: readonly string[] }): Promise<unknown> {
    if (cell === controlCellOf("blue")) return { status: "committed", reads: [], scan: { entries: [], next: null } };
    this.clientsReads++;
    if (this.clientsHold !== null) await this.clientsHold.promise;
    const where = { row: "r1" };
    return { status: "committed", reads: tx.reads.map((key) => (key === clientsKey ? utf8(JSON.stringify({ instance: where, primary: where, replica: where })) : undefined)) };
  }

  readonly hellos: { cell: string; node: string; answer: Deferred<unknown> }[] = [];

  hello(cell: string, node: string): Promise<unknown> {
    const answer = deferred<unknown>();
    this.hellos.push({ cell, node, answer });
    return answer.promise;
  }

  join(cell: string, node: string): Promise<string> {
    const answer = deferred<string>();
    this.joins.push({ cell, node, answer });
    return answer.promise;
  }

  async configure(cell: string, change: ConfigChange): Promise<unknown> {
    this.configures.push({ cell, change });
    return { status: "configured", members: [], effectiveSlot: 4 };
  }

  /** Lets the join of `cell` answer, and its add go through. */
  async release(cell: string): Promise<void> {
    const join = this.joins.find((j) => j.cell === cell);
    if (join === undefined) throw new Error(`no join of ${cell} is waiting`);
    join.answer.resolve(identity(join.node));
    await flush();
  }
}

/** A view of cells that each have n0 (dead) and two live members; `cells()` can be held by the test. */
class ScriptedView implements ColonyView {
  readonly changedCells: string[] = [];
  hold: Deferred<void> | null = null;

  private readonly known: Map<string, KnownCell>;

  constructor(cells: readonly KnownCell[]) {
    this.known = new Map(cells.map((c) => [c.cell, c]));
  }

  async cells(): Promise<readonly KnownCell[]> {
    // What the view knows when the read begins is what it returns, however long it takes.
    const known = [...this.known.values()];
    if (this.hold !== null) await this.hold.promise;
    return known;
  }

  async health(): Promise<ReadonlyMap<string, NodeHealth>> {
    return new Map(Array.from({ length: 9 }, (_, i): [string, NodeHealth] => [`n${i}`, i === 0 ? { health: "dead", downForMs: 60_000, identity: null } : { health: "alive", downForMs: 0, identity: identity(`n${i}`) }]));
  }

  /** A changed cell is learnt again: repaired, n0 gone and a live node in its place. */
  changed(cell: string): void {
    this.changedCells.push(cell);
    const known = this.known.get(cell);
    if (known !== undefined) this.known.set(cell, { ...known, members: [...known.members.filter((m) => m !== identity("n0")), identity("n8")] });
  }
}

function colony(cellCount: number, budgets: { stepsPerPassMax: number; stepsInFlightMax?: number }, membersOf = (i: number) => ["n0", `n${1 + (i % 2)}`, `n${4 + (i % 2)}`]) {
  const client = new ScriptedClient();
  const cells = Array.from({ length: cellCount }, (_, i): KnownCell => ({ cell: `vol${i}`, incarnation: "0000000000000001", members: membersOf(i).map(identity) }));
  const view = new ScriptedView(cells);
  const plane = new ControlPlane({ id: "control-a", topology: topology(), color: "blue", client: client as unknown as PhysaliaClient, view, graceMs: 1_000, size: 3, ...budgets });
  return { client, view, plane };
}

describe("the control plane's pacing", () => {
  test("a pass starts its changes and returns before they finish; one change per cell at a time, and at most the budgets", async () => {
    const { client, view, plane } = colony(5, { stepsPerPassMax: 2, stepsInFlightMax: 3 });
    const first = await plane.pass();
    // Both changes are waiting on their joins, and the pass has returned all the same.
    expect(first.steps.map((s) => s.cell)).toEqual(["vol0", "vol1"]);
    expect(first.steps.every((s) => s.step.kind === "add")).toBe(true);
    expect(plane.stepsInFlight).toBe(2);
    expect(client.configures).toEqual([]);
    // The next pass starts one more (three in flight at most), none of a cell already changing.
    const second = await plane.pass();
    expect(second.steps.map((s) => s.cell)).toEqual(["vol2"]);
    expect((await plane.pass()).steps).toEqual([]);
    expect(client.joins.map((j) => j.cell)).toEqual(["vol0", "vol1", "vol2"]);
    // vol0's change finishes: the view is told, and a slot is free again.
    await client.release("vol0");
    expect(client.configures.map((c) => [c.cell, c.change.kind])).toEqual([["vol0", "addMember"]]);
    expect(view.changedCells).toEqual(["vol0"]);
    expect(plane.stepsInFlight).toBe(2);
    const fourth = await plane.pass();
    expect(fourth.steps.length).toBe(1);
    expect(fourth.steps[0]?.cell).not.toBe("vol1");
    expect(fourth.steps[0]?.cell).not.toBe("vol2");
    for (const cell of ["vol1", "vol2", fourth.steps[0]?.cell as string]) await client.release(cell);
    await plane.settled();
    expect(plane.stepsInFlight).toBe(0);
  });

  test("cells' clients are read again in rotation in the background; a pass waits only for cells it has never read", async () => {
    const { client, plane } = colony(3, { stepsPerPassMax: 0 });
    await plane.pass();
    expect(client.clientsReads).toBe(3);
    client.clientsHold = deferred<void>();
    let second: unknown = null;
    void plane.pass().then((report) => {
      second = report;
    });
    await flush();
    // The rotation read all three again, and the pass did not wait for them.
    expect(client.clientsReads).toBe(6);
    expect(second).not.toBeNull();
    client.clientsHold.resolve();
    client.clientsHold = null;
    await flush();
  });

  test("a cell with a dead member goes before a healthy one that only needs a move; the move is planned when the budget reaches it", async () => {
    // vol0's three members crowd rack k1 and power domain p1 (a move is due); vol1 has n0, dead.
    const membersOf = (i: number) => (i === 0 ? ["n1", "n4", "n7"] : ["n0", "n2", "n5"]);
    const one = colony(2, { stepsPerPassMax: 1 }, membersOf);
    expect((await one.plane.pass()).steps.map((s) => [s.cell, s.step.kind])).toEqual([["vol1", "add"]]);
    const two = colony(2, { stepsPerPassMax: 2 }, membersOf);
    expect((await two.plane.pass()).steps.map((s) => [s.cell, s.step.kind])).toEqual([["vol1", "add"], ["vol0", "add"]]);
    for (const { client, plane } of [one, two]) {
      for (const join of client.joins) join.answer.resolve(identity(join.node));
      await plane.settled();
    }
  });

  test("cells one over their size are asked whether their members caught up all at once, not one after another", async () => {
    // Four live members each, one over the size of three: a member is removed once all caught up.
    const { client, plane } = colony(2, { stepsPerPassMax: 4 }, (i) => [`n${1 + i}`, `n${4 + i}`, `n${7}`, `n${3 + i * 3}`]);
    const passing = plane.pass();
    await flush();
    // Both cells' members were asked before any answered.
    expect(client.hellos.map((h) => h.cell).sort()).toEqual(["vol0", "vol0", "vol0", "vol0", "vol1", "vol1", "vol1", "vol1"]);
    for (const h of client.hellos) h.answer.resolve({ identity: identity(h.node), hosted: { applied: 10, incarnation: "0000000000000001", members: [] } });
    const report = await passing;
    expect(report.steps.map((s) => [s.cell, s.step.kind])).toEqual([["vol0", "remove"], ["vol1", "remove"]]);
    await plane.settled();
    expect(client.configures.map((c) => c.change.kind)).toEqual(["removeMember", "removeMember"]);
  });

  test("a cell whose change finished while the pass read the colony is not planned from that read", async () => {
    const { client, view, plane } = colony(2, { stepsPerPassMax: 1 });
    expect((await plane.pass()).steps.map((s) => s.cell)).toEqual(["vol0"]);
    // The next pass's read is under way when vol0's change finishes; what it then returns
    // for vol0 is what the view knew before the change.
    view.hold = deferred<void>();
    const reading = plane.pass();
    await flush();
    await client.release("vol0");
    view.hold.resolve();
    view.hold = null;
    const second = await reading;
    expect(second.steps.map((s) => s.cell)).toEqual(["vol1"]);
    expect(client.joins.filter((j) => j.cell === "vol0").length).toBe(1);
    await client.release("vol1");
    await plane.settled();
  });
});

/** A client for the probe view: hellos and registry pages the test answers or holds. */
class ProbeClient {
  readonly hellos = new Map<string, number>();
  silent = new Set<string>();
  held = new Map<string, Deferred<{ identity: string; hosted: null }>>();
  registry: string[] = [];
  registryHold: Deferred<void> | null = null;
  registryReads = 0;

  hello(_cell: string, node: string): Promise<{ identity: string; hosted: null }> {
    this.hellos.set(node, (this.hellos.get(node) ?? 0) + 1);
    if (this.silent.has(node)) {
      const answer = deferred<{ identity: string; hosted: null }>();
      this.held.set(node, answer);
      return answer.promise;
    }
    return Promise.resolve({ identity: identity(node), hosted: null });
  }

  /** Ends a held probe: with an answer, or with silence (the client's deadline). */
  answer(node: string, alive: boolean): void {
    const held = this.held.get(node);
    this.held.delete(node);
    if (alive) held?.resolve({ identity: identity(node), hosted: null });
    else held?.reject(new Error("no answer"));
  }

  async transact(): Promise<unknown> {
    this.registryReads++;
    const names = [...this.registry];
    if (this.registryHold !== null) await this.registryHold.promise;
    return { status: "committed", reads: [], scan: { entries: names.map((name) => [`cell/${name}`, utf8("{}")]), next: null } };
  }

  /** Members each describe answers with, and describes held until the test answers them. */
  members = ["n1", "n2", "n3"];
  holdDescribes = false;
  readonly heldDescribes: { cell: string; answer: Deferred<unknown> }[] = [];

  describe(cell: string): Promise<unknown> {
    const answer = { node: "n1", hosted: { incarnation: "0000000000000001", members: this.members.map(identity) } };
    if (!this.holdDescribes) return Promise.resolve(answer);
    const held = deferred<unknown>();
    this.heldDescribes.push({ cell, answer: held });
    // Answered, when released, with what the cell was when it was asked.
    return held.promise.then(() => answer);
  }
}

describe("the probe view", () => {
  test("a silent node's probe does not hold up the next pass; it counts once it answers, and one probe per node is out at a time", async () => {
    const client = new ProbeClient();
    const view = new ProbeView({ client: client as unknown as PhysaliaClient, nodes: ["n1", "n2"], controlCell: controlCellOf("blue") });
    client.silent.add("n2");
    // The first pass waits for every node: n2's probe ends in silence.
    const first = view.health();
    await flush();
    client.answer("n2", false);
    expect((await first).get("n2")?.health).toBe("dead");
    // The next pass: n2's new probe is held, and the pass does not wait for it.
    let second: ReadonlyMap<string, NodeHealth> | null = null;
    void view.health().then((h) => {
      second = h;
    });
    await flush();
    expect(second).not.toBeNull();
    expect((second as unknown as ReadonlyMap<string, NodeHealth>).get("n2")?.health).toBe("dead");
    expect((second as unknown as ReadonlyMap<string, NodeHealth>).get("n1")?.health).toBe("alive");
    // Its probe is still out: a third pass sends no other, and n2 answers at last.
    const third = await view.health();
    expect(third.get("n2")?.health).toBe("dead");
    expect(client.hellos.get("n2")).toBe(2);
    client.silent.delete("n2");
    client.answer("n2", true);
    await flush();
    const fourth = await view.health();
    expect(fourth.get("n2")).toEqual({ health: "alive", downForMs: 0, identity: identity("n2") });
  });

  test("the registry is read again in the background: passes go on with the names they have until the read is done", async () => {
    const client = new ProbeClient();
    client.registry = ["a", "b"];
    const view = new ProbeView({ client: client as unknown as PhysaliaClient, nodes: ["n1"], controlCell: controlCellOf("blue"), rescanEvery: 2 });
    expect((await view.cells()).map((c) => c.cell).sort()).toEqual(["a", "b"]);
    await view.cells();
    expect(client.registryReads).toBe(1);
    client.registry = ["a", "b", "c"];
    client.registryHold = deferred<void>();
    // The third pass begins a read and does not wait for it.
    let third: readonly KnownCell[] | null = null;
    void view.cells().then((cells) => {
      third = cells;
    });
    await flush();
    expect(client.registryReads).toBe(2);
    expect((third as readonly KnownCell[] | null)?.map((c) => c.cell).sort()).toEqual(["a", "b"]);
    client.registryHold.resolve();
    client.registryHold = null;
    await flush();
    expect((await view.cells()).map((c) => c.cell).sort()).toEqual(["a", "b", "c"]);
  });

  test("the rotation's describes run in the background, and one that began before a change cannot undo what a later describe learnt", async () => {
    const client = new ProbeClient();
    client.registry = ["a", "b"];
    const view = new ProbeView({ client: client as unknown as PhysaliaClient, nodes: ["n1", "n2", "n3", "n4"], controlCell: controlCellOf("blue"), describePerPass: 1 });
    const membersOf = async (cell: string) => (await view.cells()).find((c) => c.cell === cell)?.members;
    expect(await membersOf("a")).toEqual(["n1", "n2", "n3"].map(identity));
    // The next pass begins the rotation (a), which is held: the pass does not wait for it.
    client.holdDescribes = true;
    let second: readonly KnownCell[] | null = null;
    void view.cells().then((cells) => {
      second = cells;
    });
    await flush();
    expect(second).not.toBeNull();
    expect(client.heldDescribes.map((d) => d.cell)).toEqual(["a"]);
    // The control plane changes a; the next pass describes it again and learns the change.
    client.holdDescribes = false;
    client.members = ["n1", "n2", "n4"];
    view.changed("a");
    expect(await membersOf("a")).toEqual(["n1", "n2", "n4"].map(identity));
    // The rotation's old describe answers now, with the members from before the change.
    client.members = ["n1", "n2", "n3"];
    for (const held of client.heldDescribes) held.answer.resolve(undefined);
    await flush();
    client.members = ["n1", "n2", "n4"];
    expect((await view.cells()).find((c) => c.cell === "a")?.members).toEqual(["n1", "n2", "n4"].map(identity));
  });
});
