// Two ways to walk a world's transitions: exhaustively (depth first, every reachable state
// once, within bounds) and by seeded random walks (deeper than exhaustive search can go).
// Both stop at the first violation the history reports and give the path that reached it.

import { Rng } from "../../../src/random.ts";
import { hashText } from "./data.ts";
import type { Transition, World } from "./world.ts";

export interface SearchBounds {
  /** A state in which some replica promised a round above this is checked, not expanded. */
  readonly roundsMax: number;
  /** Paths are cut after this many transitions. */
  readonly depthMax?: number;
  /** The search gives up (reporting itself incomplete) after expanding this many states. */
  readonly statesMax?: number;
}

export interface SearchReport {
  readonly violation: string | null;
  /** The transitions from the root to the violating state. */
  readonly trace: readonly string[];
  /** Distinct states expanded. */
  readonly states: number;
  /** Transitions taken, duplicates included. */
  readonly transitions: number;
  /** States reached again with no more budget left than before (pruned by dedup). */
  readonly revisits: number;
  /** False when `statesMax` stopped the search before it ran out of states. */
  readonly complete: boolean;
  readonly deepest: number;
  readonly elapsedMs: number;
}

interface Node {
  readonly world: World;
  readonly parent: Node | null;
  /** The transition from the parent's world to this one. */
  readonly via: Transition | null;
  readonly depth: number;
}

function roundOver(world: World, roundsMax: number): boolean {
  for (const replica of world.replicas.values()) if (replica.promisedBallot.round > roundsMax) return true;
  return false;
}

function traceOf(node: Node): string[] {
  const steps: string[] = [];
  for (let n: Node | null = node; n !== null && n.parent !== null && n.via !== null; n = n.parent) steps.push(n.parent.world.describe(n.via));
  return steps.reverse();
}

/**
 * Every state reachable from `root` within the bounds, each expanded once: a state is skipped
 * when it was expanded before with at least as much of every budget (and of the depth) left.
 */
export function exhaustive(root: World, bounds: SearchBounds, hooks: { now: () => number; onState?: (world: World) => void }): SearchReport {
  const now = hooks.now;
  const started = now();
  const depthMax = bounds.depthMax ?? Infinity;
  const statesMax = bounds.statesMax ?? Infinity;
  const seen = new Map<string, number[][]>();
  const stack: Node[] = [{ world: root, parent: null, via: null, depth: 0 }];
  let states = 0;
  let transitions = 0;
  let revisits = 0;
  let deepest = 0;
  const report = (violation: string | null, trace: string[], complete: boolean): SearchReport => ({
    violation, trace, states, transitions, revisits, complete, deepest, elapsedMs: Math.round(now() - started),
  });
  if (root.violation !== null) return report(root.violation, [], true);
  while (stack.length > 0) {
    const node = stack.pop() as Node;
    const world = node.world;
    const budget = [...world.budgetVector(), depthMax - node.depth];
    const key = hashText(world.fingerprint());
    const known = seen.get(key);
    if (known !== undefined && known.some((b) => b.every((x, i) => x >= (budget[i] as number)))) {
      revisits++;
      continue;
    }
    const kept = (known ?? []).filter((b) => !b.every((x, i) => x <= (budget[i] as number)));
    kept.push(budget);
    seen.set(key, kept);
    if (states >= statesMax) return report(null, [], false);
    states++;
    hooks.onState?.(world);
    deepest = Math.max(deepest, node.depth);
    if (node.depth >= depthMax || roundOver(world, bounds.roundsMax)) continue;
    const options = world.transitions();
    for (let i = options.length - 1; i >= 0; i--) {
      const via = options[i] as Transition;
      const next = world.fork();
      next.apply(via);
      transitions++;
      const child: Node = { world: next, parent: node, via, depth: node.depth + 1 };
      if (next.violation !== null) return report(next.violation, traceOf(child), false);
      stack.push(child);
    }
  }
  return report(null, [], true);
}

export interface WalkOptions {
  readonly seeds: number;
  readonly firstSeed?: number;
  /** Transitions per walk at most; a walk also ends when nothing is enabled. */
  readonly stepsMax: number;
  /** Relative weights of the kinds of transition (default: deliveries dominate). */
  readonly weights?: Partial<Record<Transition["kind"] | "copy", number>>;
}

export interface WalkReport {
  readonly violation: string | null;
  /** The seed that found it, and the trace of that walk (replayed). */
  readonly seed: number | null;
  readonly trace: readonly string[];
  readonly walks: number;
  readonly steps: number;
  readonly elapsedMs: number;
}

const defaultWeights: Record<Transition["kind"] | "copy", number> = { deliver: 60, copy: 2, drop: 6, tick: 10, wait: 2, inject: 12, crash: 1 };

/** Picks a kind of transition by weight (among the kinds enabled), then one of that kind uniformly. */
function pick(world: World, rng: Rng, weights: Record<Transition["kind"] | "copy", number>): Transition | null {
  const byKind = new Map<Transition["kind"] | "copy", Transition[]>();
  for (const t of world.transitions()) {
    const kind = t.kind === "deliver" && t.keepCopy ? "copy" : t.kind;
    let list = byKind.get(kind);
    if (list === undefined) byKind.set(kind, (list = []));
    list.push(t);
  }
  const kinds = [...byKind.keys()].filter((k) => weights[k] > 0);
  const total = kinds.reduce((sum, k) => sum + weights[k], 0);
  if (total <= 0) return null;
  let x = rng.nextFloat() * total;
  for (const kind of kinds) {
    x -= weights[kind];
    if (x < 0 || kind === kinds[kinds.length - 1]) {
      const list = byKind.get(kind) as Transition[];
      return list[rng.nextInt(list.length)] as Transition;
    }
  }
  return null;
}

/** One walk from `make(seed)` under `seed`; with `trace`, the description of every transition taken. */
export function walk(make: (seed: number) => World, seed: number, options: WalkOptions, trace: string[] | null): { violation: string | null; steps: number } {
  const world = make(seed);
  const rng = new Rng(seed);
  const weights = { ...defaultWeights, ...options.weights };
  if (world.violation !== null) return { violation: world.violation, steps: 0 };
  for (let step = 1; step <= options.stepsMax; step++) {
    const transition = pick(world, rng, weights);
    if (transition === null) return { violation: null, steps: step - 1 };
    trace?.push(world.describe(transition));
    world.apply(transition);
    if (world.violation !== null) return { violation: world.violation, steps: step };
  }
  return { violation: null, steps: options.stepsMax };
}

/** Random walks from fresh worlds, one per seed, until one finds a violation. */
export function randomWalks(make: (seed: number) => World, options: WalkOptions, now: () => number): WalkReport {
  const started = now();
  const first = options.firstSeed ?? 1;
  let steps = 0;
  for (let seed = first; seed < first + options.seeds; seed++) {
    const result = walk(make, seed, options, null);
    steps += result.steps;
    if (result.violation !== null) {
      const trace: string[] = [];
      walk(make, seed, options, trace);
      return { violation: result.violation, seed, trace, walks: seed - first + 1, steps, elapsedMs: Math.round(now() - started) };
    }
  }
  return { violation: null, seed: null, trace: [], walks: options.seeds, steps, elapsedMs: Math.round(now() - started) };
}
