// The simulation's event queue: a binary heap ordered by time, then by insertion, so that
// events at the same millisecond run in the order they were scheduled and a seed replays.

interface Event {
  readonly atMs: number;
  readonly seq: number;
  readonly run: () => void;
}

export class EventQueue {
  private readonly heap: Event[] = [];
  private seq = 0;
  nowMs = 0;

  get size(): number {
    return this.heap.length;
  }

  at(atMs: number, run: () => void): void {
    const event = { atMs: Math.max(atMs, this.nowMs), seq: this.seq++, run };
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(event, heap[parent] as Event)) break;
      heap[i] = heap[parent] as Event;
      i = parent;
    }
    heap[i] = event;
  }

  /** Runs events until the queue is empty or the next one is after `untilMs`. */
  runUntil(untilMs: number): number {
    let count = 0;
    while (this.heap.length > 0 && (this.heap[0] as Event).atMs <= untilMs) {
      const event = this.pop();
      this.nowMs = event.atMs;
      event.run();
      count++;
    }
    this.nowMs = Math.max(this.nowMs, untilMs);
    return count;
  }

  private pop(): Event {
    const heap = this.heap;
    const top = heap[0] as Event;
    const last = heap.pop() as Event;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && before(heap[right] as Event, heap[left] as Event) ? right : left;
        if (!before(heap[child] as Event, last)) break;
        heap[i] = heap[child] as Event;
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }
}

function before(a: Event, b: Event): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}
