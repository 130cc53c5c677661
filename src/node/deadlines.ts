// When each replica next needs a tick: a min-heap with lazy deletion, so one timer serves
// every cell on the node. Idle cells are simply absent.

interface Entry {
  readonly at: number;
  readonly cell: string;
}

export class Deadlines {
  private readonly heap: Entry[] = [];
  private readonly current = new Map<string, number>();

  get size(): number {
    return this.current.size;
  }

  has(cell: string): boolean {
    return this.current.has(cell);
  }

  /** Sets (or clears, with null) the deadline of a cell. */
  set(cell: string, at: number | null): void {
    if (at === null) {
      this.current.delete(cell);
      return;
    }
    if (this.current.get(cell) === at) return;
    this.current.set(cell, at);
    this.push({ at, cell });
  }

  /** The earliest live deadline, or null. */
  earliest(): number | null {
    this.prune();
    return this.heap[0]?.at ?? null;
  }

  /** Removes and returns every cell due at `now`. */
  due(now: number): string[] {
    const out: string[] = [];
    for (;;) {
      this.prune();
      const top = this.heap[0];
      if (top === undefined || top.at > now) break;
      this.pop();
      this.current.delete(top.cell);
      out.push(top.cell);
    }
    return out;
  }

  private prune(): void {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || this.current.get(top.cell) === top.at) return;
      this.pop();
    }
  }

  private push(entry: Entry): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((heap[parent] as Entry).at <= entry.at) break;
      heap[i] = heap[parent] as Entry;
      i = parent;
    }
    heap[i] = entry;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop() as Entry;
    if (heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = last;
      let at = i;
      if (left < heap.length && (heap[left] as Entry).at < smallest.at) {
        smallest = heap[left] as Entry;
        at = left;
      }
      if (right < heap.length && (heap[right] as Entry).at < smallest.at) {
        smallest = heap[right] as Entry;
        at = right;
      }
      if (at === i) break;
      heap[i] = smallest;
      i = at;
    }
    heap[i] = last;
  }
}
