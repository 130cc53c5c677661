// The Wing–Gong search with Lowe's memoization, as Porcupine does it (Lowe, "Testing for
// linearizability", 2017; Horn and Kroening, "Faster linearizability checking via
// P-compositionality", 2015), plus a partial-order reduction for operations whose outcome
// is unknown.
//
// The history becomes a doubly linked list of call and return events in time order. The
// operations that may be linearized next are exactly those whose call comes before the first
// remaining return. The search tries them depth first: it applies one to the model and, when
// the model's answer matches the recorded one, removes it from the list and goes deeper;
// when nothing fits, it backtracks. A configuration (set of linearized operations, model
// state) already explored is not explored again: the rest of the search from it depends on
// nothing else.
//
// Operations with an unknown outcome have no return event and any answer fits them, so a
// naive search tries every subset of the pending ones, in every order, at every dead end.
// Instead each step linearizes a *run*: some unknown-outcome operations U, then one completed
// operation K, where every member of U is connected to K through dependencies inside the run
// (see footprint.ts). That loses nothing: in any linearization, the unknown operations of a
// run that are not so connected commute with all the others and with K, so they can move
// past K into the next run, or be dropped after the last one; each such move takes an
// unknown operation past a completed one, so rewriting ends. A timed-out write that no
// answer depends on is therefore never tried. The candidates for U are explored breadth
// first by the states they reach, keeping for each state only the smallest sets of
// operations that reach it. Even so, many timed-out writes pending on the same few keys make
// that exponential, so a caller can bound the size of U and widen it only when needed.
//
// Two more prunings keep the common case near linear:
// - A configuration with fewer unknown operations linearized dominates one with the same
//   completed operations and state but more: whatever the second can still do, the first
//   can. The memo skips a configuration when a dominating one was explored.
// - A completed operation that changes nothing wherever it goes (it writes nothing, or its
//   recorded answer says it did not commit) and fits now can go first in any linearization
//   from here, so it is the only choice tried. (A write that merely changes nothing in this
//   state, such as deleting a missing key, does not qualify: it may matter elsewhere.)

import { assert } from "../core/assert.ts";
import type { TxResult } from "../core/kv.ts";
import type { Transaction } from "../core/transaction.ts";
import { Interference } from "./footprint.ts";
import { type ModelState, type ModelStep, mix32, sameState, stepModel } from "./model.ts";
import { resultsEqual } from "./results.ts";

export interface SearchOperation {
  /** A transaction that has passed `checkTransaction`. */
  readonly tx: Transaction;
  /** The recorded answer, or null when the outcome is unknown. */
  readonly result: TxResult | null;
  readonly invokedAt: number;
  /** Ignored when the outcome is unknown. */
  readonly respondedAt: number;
}

export interface SearchOptions {
  readonly initial: ModelState;
  /** Give up after applying operations to the model this many times (each computes a state). */
  readonly statesMax: number;
  /**
   * Which completed operations a run may put unknown-outcome ones in front of: "all", or
   * for a quicker search only the "misfits" that do not fit without them. The quick search
   * misses some linearizations (an unknown write may have to precede a blind write whose
   * answer it does not change), so its failures prove nothing.
   */
  readonly unknownsBefore: "all" | "misfits";
  /** The most unknown-outcome operations in one run; Infinity for no bound. */
  readonly unknownsPerRunMax: number;
}

/** A completed operation that could not go next, and what the model would have answered. */
export interface Blocked {
  readonly op: number;
  readonly expected: TxResult;
}

export type SearchOutcome =
  | {
    readonly kind: "linearizable";
    /** Indices of the linearized operations, in order; unknown outcomes left out took no effect. */
    readonly order: readonly number[];
    readonly statesExplored: number;
  }
  | {
    readonly kind: "notLinearizable";
    /**
     * The completed operations that cannot go next at the configurations that linearized
     * the most completed operations, with the model's answer at the first such.
     */
    readonly frontier: readonly Blocked[];
    /** The first of those longest partial linearizations. */
    readonly prefix: readonly number[];
    readonly statesExplored: number;
    /**
     * True when every run was tried, so no linearization exists; false when the quick
     * search or `unknownsPerRunMax` left some out.
     */
    readonly exhaustive: boolean;
  }
  | {
    readonly kind: "budgetExceeded";
    readonly statesExplored: number;
    /** The most completed operations any partial linearization reached. */
    readonly completedLinearizedMax: number;
  };

class Event {
  prev: Event | null = null;
  next: Event | null = null;
  /** A call's return event; null for a return, and for a call whose outcome is unknown. */
  match: Event | null = null;
  constructor(
    readonly op: number,
    readonly isCall: boolean,
    readonly at: number,
  ) {}
}

/** Unknown-outcome calls, then the completed call that ends the run. */
interface Run {
  readonly unknowns: readonly Event[];
  readonly completed: Event;
  readonly next: ModelState;
}

interface Node {
  readonly state: ModelState;
  /** The run that led here; null at the root. */
  readonly via: Run | null;
  readonly runs: Iterator<Run>;
  /** Completed candidates that did not fit here on their own. */
  readonly failed: Blocked[];
}

interface Reached {
  readonly path: readonly Event[];
  /** The members of `path` as a bitset over the pool. */
  readonly used: Uint32Array;
  readonly state: ModelState;
}

interface Configuration {
  readonly words: Uint32Array;
  readonly state: ModelState;
}

export function search(ops: readonly SearchOperation[], options: SearchOptions): SearchOutcome {
  const head = buildEvents(ops);
  const interference = new Interference(ops.map((op) => op.tx), options.initial.store);
  const completedCount = ops.filter((op) => op.result !== null).length;
  const inert = ops.map((op) => op.tx.writes.length === 0 || (op.result !== null && op.result.status !== "committed"));

  // Linearized operations as a bitset; the hash covers the completed ones only, so that a
  // configuration and those it dominates share a bucket.
  const words = new Uint32Array((ops.length + 31) >>> 5);
  const completedWords = new Uint32Array(words.length);
  const zobrist = new Int32Array(ops.length);
  ops.forEach((op, i) => {
    if (op.result === null) return;
    completedWords[i >>> 5]! |= 1 << (i & 31);
    zobrist[i] = mix32(Math.imul(i + 1, 0x9e3779b9));
  });
  let wordsHash = 0;
  const flip = (op: number): void => {
    words[op >>> 5]! ^= 1 << (op & 31);
    wordsHash ^= zobrist[op]!;
  };
  const cache = new Map<number, Configuration[]>();
  /** True when a configuration with the same completed operations, the same state and no more unknown ones was explored. */
  const explore = (state: ModelState): boolean => {
    const key = (wordsHash ^ Math.imul(state.hash, 0x9e3779b1)) | 0;
    const bucket = cache.get(key);
    if (bucket !== undefined) {
      for (const seen of bucket) if (dominates(seen.words, words, completedWords) && sameState(seen.state, state)) return false;
    }
    const configuration = { words: words.slice(), state };
    if (bucket === undefined) cache.set(key, [configuration]);
    else bucket.push(configuration);
    return true;
  };

  const stack: Node[] = [];
  let explored = 0;
  let outOfBudget = false;
  /** Set when a run was cut short by `unknownsPerRunMax`. */
  let truncated = false;
  // What the deepest dead ends looked like, for the verdict.
  let depthMax = 0;
  let frontier = new Map<number, TxResult>();
  let prefix: number[] | null = null;

  /** Applies an operation, counting it against the budget; null once the budget is spent. */
  const step = (state: ModelState, op: number): ModelStep | null => {
    if (explored >= options.statesMax) {
      outOfBudget = true;
      return null;
    }
    explored++;
    return stepModel(state, ops[op]!.tx);
  };

  /**
   * Yields the runs that fit in `state` at stack depth `depth`: first single completed
   * operations, then runs with unknown-outcome ones. Completed candidates that do not fit on
   * their own go to `failed` while `depth` is the deepest yet.
   */
  function* runsAt(state: ModelState, depth: number, failed: Blocked[]): Generator<Run> {
    const completed: Event[] = [];
    const unknown: Event[] = [];
    for (let e = head.next; e !== null && e.isCall; e = e.next) (e.match === null ? unknown : completed).push(e);
    const misfits: Event[] = [];
    const fits: Run[] = [];
    for (const call of completed) {
      const applied = step(state, call.op);
      if (applied === null) return;
      if (resultsEqual(ops[call.op]!.result!, applied.result)) {
        // An operation that changes nothing wherever it goes (it writes nothing, or its
        // recorded answer says it failed) and fits here can go first in any linearization
        // from here: it is the only choice worth trying. A write that merely changes nothing
        // in this state, such as deleting a missing key, may matter elsewhere.
        const run = { unknowns: [], completed: call, next: applied.next };
        if (inert[call.op]!) {
          yield run;
          return;
        }
        fits.push(run);
      } else {
        misfits.push(call);
        if (depth === depthMax) failed.push({ op: call.op, expected: applied.result });
      }
    }
    yield* fits;
    const targets = options.unknownsBefore === "all" ? completed : misfits;
    const pool = connectedTo(targets, unknown, interference);
    if (pool.length === 0) return;
    for (const reached of reachable(state, pool)) {
      for (const call of targets) {
        if (!connectedRun(reached.path, call, interference)) continue;
        const applied = step(reached.state, call.op);
        if (applied === null) return;
        if (resultsEqual(ops[call.op]!.result!, applied.result)) yield { unknowns: reached.path, completed: call, next: applied.next };
      }
    }
  }

  /**
   * The states that sequences of `pool` operations reach from `from`, breadth first, each
   * with a smallest set of operations reaching it: a larger set reaching the same state can
   * do nothing more. Every state reached counts against the budget.
   */
  function* reachable(from: ModelState, pool: readonly Event[]): Generator<Reached> {
    const root: Reached = { path: [], used: new Uint32Array((pool.length + 31) >>> 5), state: from };
    const seen = new Map<number, Reached[]>([[from.hash, [root]]]);
    let layer = [root];
    while (layer.length > 0) {
      if (layer[0]!.path.length >= options.unknownsPerRunMax) {
        if (layer[0]!.path.length < pool.length) truncated = true;
        return;
      }
      const nextLayer: Reached[] = [];
      for (const reached of layer) {
        for (let i = 0; i < pool.length; i++) {
          if ((reached.used[i >>> 5]! & (1 << (i & 31))) !== 0) continue;
          const call = pool[i]!;
          const applied = step(reached.state, call.op);
          if (applied === null) return;
          const state = applied.next;
          const used = reached.used.slice();
          used[i >>> 5]! |= 1 << (i & 31);
          const bucket = seen.get(state.hash);
          if (bucket !== undefined && bucket.some((b) => isSubset(b.used, used) && sameState(b.state, state))) continue;
          const next: Reached = { path: [...reached.path, call], used, state };
          if (bucket === undefined) seen.set(state.hash, [next]);
          else bucket.push(next);
          nextLayer.push(next);
          yield next;
        }
      }
      layer = nextLayer;
    }
  }

  const push = (state: ModelState, via: Run | null): void => {
    const failed: Blocked[] = [];
    stack.push({ state, via, runs: runsAt(state, stack.length, failed), failed });
  };

  push(options.initial, null);
  for (;;) {
    const depth = stack.length - 1;
    if (depth === completedCount) return { kind: "linearizable", order: linearized(stack), statesExplored: explored };
    const node = stack[depth]!;
    const next = node.runs.next();
    if (outOfBudget) return { kind: "budgetExceeded", statesExplored: explored, completedLinearizedMax: depthMax };
    if (next.done !== true) {
      const run = next.value;
      for (const u of run.unknowns) flip(u.op);
      flip(run.completed.op);
      if (!explore(run.next)) {
        flip(run.completed.op);
        for (const u of run.unknowns) flip(u.op);
        continue;
      }
      for (const u of run.unknowns) unlink(u);
      unlink(run.completed);
      unlink(run.completed.match!);
      if (depth + 1 > depthMax) {
        depthMax = depth + 1;
        frontier = new Map();
        prefix = null;
      }
      push(run.next, run);
      continue;
    }

    // Every run from this node has been tried.
    if (depth === depthMax) {
      prefix ??= linearized(stack);
      for (const blocked of node.failed) if (!frontier.has(blocked.op)) frontier.set(blocked.op, blocked.expected);
    }
    stack.pop();
    const run = node.via;
    if (run === null) {
      assert(frontier.size > 0 && prefix !== null, "search failed without a blocked operation");
      return {
        kind: "notLinearizable",
        frontier: [...frontier].map(([op, expected]) => ({ op, expected })),
        prefix,
        statesExplored: explored,
        exhaustive: options.unknownsBefore === "all" && !truncated,
      };
    }
    relink(run.completed.match!);
    relink(run.completed);
    for (let i = run.unknowns.length - 1; i >= 0; i--) relink(run.unknowns[i]!);
    flip(run.completed.op);
    for (const u of run.unknowns) flip(u.op);
  }
}

/** The operations linearized along the stack, in order. */
function linearized(stack: readonly Node[]): number[] {
  const order: number[] = [];
  for (const node of stack) {
    if (node.via === null) continue;
    for (const u of node.via.unknowns) order.push(u.op);
    order.push(node.via.completed.op);
  }
  return order;
}

/** The unknown-outcome calls connected through dependencies, among themselves, to some completed call. */
function connectedTo(completed: readonly Event[], unknown: readonly Event[], interference: Interference): Event[] {
  const reached = new Set<Event>();
  let frontier: readonly Event[] = completed;
  while (frontier.length > 0) {
    const next: Event[] = [];
    for (const u of unknown) {
      if (!reached.has(u) && frontier.some((f) => interference.dependent(u.op, f.op))) {
        reached.add(u);
        next.push(u);
      }
    }
    frontier = next;
  }
  return unknown.filter((u) => reached.has(u));
}

/** True when every call of `path` is connected to `completed` through dependencies within the run. */
function connectedRun(path: readonly Event[], completed: Event, interference: Interference): boolean {
  if (path.length === 1) return interference.dependent(path[0]!.op, completed.op);
  return connectedTo([completed], path, interference).length === path.length;
}

function isSubset(small: Uint32Array, large: Uint32Array): boolean {
  for (let i = 0; i < small.length; i++) if ((small[i]! & ~large[i]!) !== 0) return false;
  return true;
}

/** `seen` linearized the same completed operations as `current` and a subset of its unknown ones. */
function dominates(seen: Uint32Array, current: Uint32Array, completedMask: Uint32Array): boolean {
  for (let i = 0; i < seen.length; i++) {
    const a = seen[i]!;
    const b = current[i]!;
    if ((a & ~b) !== 0 || ((a ^ b) & completedMask[i]!) !== 0) return false;
  }
  return true;
}

/** Links the events in time order behind a sentinel head. At equal times calls come first: such operations count as concurrent. */
function buildEvents(ops: readonly SearchOperation[]): Event {
  const events: Event[] = [];
  ops.forEach((op, i) => {
    assert(Number.isFinite(op.invokedAt), `operation ${i}: invocation time is not finite`);
    const call = new Event(i, true, op.invokedAt);
    events.push(call);
    if (op.result !== null) {
      assert(Number.isFinite(op.respondedAt) && op.respondedAt >= op.invokedAt, `operation ${i}: responded before it was invoked`);
      call.match = new Event(i, false, op.respondedAt);
      events.push(call.match);
    }
  });
  events.sort((a, b) => a.at - b.at || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1));
  const head = new Event(-1, false, -Infinity);
  let last = head;
  for (const event of events) {
    last.next = event;
    event.prev = last;
    last = event;
  }
  return head;
}

function unlink(event: Event): void {
  event.prev!.next = event.next;
  if (event.next !== null) event.next.prev = event.prev;
}

/** Undoes `unlink`; unlinks are undone in the reverse order, so the saved links are still right. */
function relink(event: Event): void {
  event.prev!.next = event;
  if (event.next !== null) event.next.prev = event;
}
