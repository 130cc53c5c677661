// The Wing–Gong search with Lowe's memoization, as Porcupine does it (Horn and Kroening,
// "Faster linearizability checking via P-compositionality"; Lowe, "Testing for
// linearizability", 2017).
//
// The history becomes a doubly linked list of call and return events in time order. The
// operations that may be linearized next are exactly those whose call comes before the first
// remaining return. The search tries each, in a depth-first walk: it applies the operation
// to the model, and when the model's answer matches the recorded one it removes the
// operation from the list ("lifts" it) and goes deeper; when the first remaining event is a
// return, no operation can go next and it backtracks. A configuration (set of linearized
// operations, model state) already explored is never explored again: the rest of the
// search from it depends on nothing else.
//
// Operations with an unknown outcome have no return event, so they never block, and any
// answer matches. They are tried only after every completed candidate at a node has failed
// ("just in time"): a write that timed out is placed where some later answer needs it, and
// left out when none does. Trying them last changes the order of the search, not the set of
// orders it covers, so the search stays complete.

import { assert } from "../core/assert.ts";
import type { TxResult } from "../core/kv.ts";
import type { Transaction } from "../core/transaction.ts";
import { type ModelState, mix32, sameState, stepModel } from "./model.ts";
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
  /** Give up after this many distinct configurations. */
  readonly statesMax: number;
}

/** An operation that could not go next, and what the model would have answered instead. */
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
     * The operations that no explored order could take next, at the configurations that
     * linearized the most completed operations, with the model's answer at the first such.
     */
    readonly frontier: readonly Blocked[];
    /** The first of those longest partial linearizations. */
    readonly prefix: readonly number[];
    readonly statesExplored: number;
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

interface Frame {
  readonly call: Event;
  readonly state: ModelState;
  readonly phase: Phase;
}

interface Configuration {
  readonly words: Uint32Array;
  readonly state: ModelState;
}

/** Phase 1 tries completed operations; phase 2 then tries those with an unknown outcome. */
type Phase = 1 | 2;

export function search(ops: readonly SearchOperation[], options: SearchOptions): SearchOutcome {
  const head = buildEvents(ops);
  const zobrist = zobristTable(ops.length);
  const words = new Uint32Array((ops.length + 31) >>> 5);
  let wordsHash = 0;
  const flip = (op: number): void => {
    words[op >>> 5]! ^= 1 << (op & 31);
    wordsHash ^= zobrist[op]!;
  };
  const cache = new Map<number, Configuration[]>();

  let completedLeft = 0;
  for (const op of ops) if (op.result !== null) completedLeft++;
  let unknownLeft = ops.length - completedLeft;

  const stack: Frame[] = [];
  /** Per stack depth: completed candidates that failed at the node at that depth. */
  const failed: Blocked[][] = [[]];
  let state = options.initial;
  let cursor = head.next;
  let phase: Phase = 1;
  let completedDepth = 0;
  let completedDepthMax = 0;
  let frontier = new Map<number, TxResult>();
  let prefix: number[] | null = null;
  let explored = 0;

  for (;;) {
    if (completedLeft === 0) {
      return { kind: "linearizable", order: stack.map((f) => f.call.op), statesExplored: explored };
    }

    if (cursor === null || !cursor.isCall) {
      // Every candidate of this phase has been tried at this node.
      if (phase === 1 && unknownLeft > 0) {
        phase = 2;
        cursor = head.next;
        continue;
      }
      if (completedDepth === completedDepthMax) {
        prefix ??= stack.map((f) => f.call.op);
        for (const blocked of failed[stack.length]!) {
          if (!frontier.has(blocked.op)) frontier.set(blocked.op, blocked.expected);
        }
      }
      const frame = stack.pop();
      if (frame === undefined) {
        assert(frontier.size > 0 && prefix !== null, "search failed without a blocked operation");
        return {
          kind: "notLinearizable",
          frontier: [...frontier].map(([op, expected]) => ({ op, expected })),
          prefix,
          statesExplored: explored,
        };
      }
      unlift(frame.call);
      flip(frame.call.op);
      state = frame.state;
      if (frame.call.match === null) unknownLeft++;
      else {
        completedLeft++;
        completedDepth--;
      }
      cursor = frame.call.next;
      phase = frame.phase;
      continue;
    }

    const call = cursor;
    const op = ops[call.op]!;
    const completed = op.result !== null;
    if (completed !== (phase === 1)) {
      cursor = call.next;
      continue;
    }
    const step = stepModel(state, op.tx);
    if (op.result === null || resultsEqual(op.result, step.result)) {
      flip(call.op);
      const key = (wordsHash ^ Math.imul(step.next.hash, 0x9e3779b1)) | 0;
      const bucket = cache.get(key);
      if (bucket === undefined || !bucket.some((c) => sameState(c.state, step.next) && sameWords(c.words, words))) {
        explored++;
        if (explored > options.statesMax) {
          return { kind: "budgetExceeded", statesExplored: explored - 1, completedLinearizedMax: completedDepthMax };
        }
        const configuration = { words: words.slice(), state: step.next };
        if (bucket === undefined) cache.set(key, [configuration]);
        else bucket.push(configuration);

        stack.push({ call, state, phase });
        lift(call);
        state = step.next;
        if (completed) {
          completedLeft--;
          completedDepth++;
          if (completedDepth > completedDepthMax) {
            completedDepthMax = completedDepth;
            frontier = new Map();
            prefix = null;
          }
        } else {
          unknownLeft--;
        }
        const depth = stack.length;
        if (failed.length <= depth) failed.push([]);
        else failed[depth]!.length = 0;
        cursor = head.next;
        phase = 1;
        continue;
      }
      flip(call.op);
    } else if (completedDepth === completedDepthMax) {
      failed[stack.length]!.push({ op: call.op, expected: step.result });
    }
    cursor = call.next;
  }
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

function lift(call: Event): void {
  unlink(call);
  if (call.match !== null) unlink(call.match);
}

/** Undoes `lift`; lifts are undone in the reverse order, so the saved links are still right. */
function unlift(call: Event): void {
  if (call.match !== null) relink(call.match);
  relink(call);
}

function unlink(event: Event): void {
  event.prev!.next = event.next;
  if (event.next !== null) event.next.prev = event.prev;
}

function relink(event: Event): void {
  event.prev!.next = event;
  if (event.next !== null) event.next.prev = event;
}

function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A fixed pseudo-random 32-bit tag per operation, so a set's hash updates with one xor (Zobrist hashing). */
function zobristTable(size: number): Int32Array {
  const table = new Int32Array(size);
  for (let i = 0; i < size; i++) table[i] = mix32(Math.imul(i + 1, 0x9e3779b9));
  return table;
}
