// A tiny max-flow (augmenting paths by depth-first search) for the exact question "can the
// remaining replicas still be spread over racks and power domains within their caps?".
// The flow it ever needs is at most one cell's size, so at most that many searches run.

export class FlowGraph {
  private readonly head: number[];
  private readonly next: number[] = [];
  private readonly to: number[] = [];
  private readonly capacity: number[] = [];
  private readonly seen: Int32Array;
  private epoch = 0;

  constructor(vertexCount: number) {
    this.head = new Array<number>(vertexCount).fill(-1);
    this.seen = new Int32Array(vertexCount);
  }

  addEdge(from: number, to: number, capacity: number): void {
    if (capacity <= 0) return;
    this.push(from, to, capacity);
    this.push(to, from, 0);
  }

  private push(from: number, to: number, capacity: number): void {
    this.to.push(to);
    this.capacity.push(capacity);
    this.next.push(this.head[from]!);
    this.head[from] = this.to.length - 1;
  }

  /** The largest flow from source to sink, stopping early once it reaches `enough`. */
  maxFlow(source: number, sink: number, enough: number): number {
    let flow = 0;
    while (flow < enough) {
      this.epoch++;
      if (!this.augment(source, sink)) break;
      flow++;
    }
    return flow;
  }

  /** Pushes one unit along some path with residual capacity; all capacities are integers. */
  private augment(vertex: number, sink: number): boolean {
    if (vertex === sink) return true;
    this.seen[vertex] = this.epoch;
    for (let e = this.head[vertex]!; e >= 0; e = this.next[e]!) {
      const target = this.to[e]!;
      if (this.capacity[e]! > 0 && this.seen[target] !== this.epoch && this.augment(target, sink)) {
        this.capacity[e]!--;
        this.capacity[e ^ 1]!++;
        return true;
      }
    }
    return false;
  }
}
