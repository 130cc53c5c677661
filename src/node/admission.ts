// Admission: how a node takes clients' frames when it cannot keep up with them.
//
// A node reads every datagram as it arrives and checks its MAC and stamp at once, but it
// steps the cell core for a client's frame only later, in slices it runs between reads of
// the socket. Peers' frames (accepts, promises, commits) are stepped as they arrive, so a
// flood of client requests never delays a quorum, and the socket is read often enough that
// the kernel has no reason to drop a peer's datagram behind a queue of requests.
//
// Waiting frames are kept per key and taken round-robin. The node's key is the cell a
// client's last stepped frame was for (a client keeps to its cell: a session is a cell's),
// or the client itself until one is stepped; so a cell flooded by a thousand frames, from
// one client or from many, waits behind its own, not in front of a quiet cell's one.
//
// The queue is bounded by time, not by count: the node measures how fast it gets through
// client frames while it has a backlog, and admits no more than it can step within
// `budgetMs`. Past that a frame is refused before it is decoded (the node answers each
// request in it `overloaded` from a shallow read of the body), and a key (a cell) already
// holding more than its share of the queue is refused first. What is admitted is answered
// within the budget, well inside a client's first attempt timeout, so an admitted request
// does not time out and its client does not take a slow leader for a dead one.
//
// Pure bookkeeping: the node passes the clock in and runs the slices.

export interface AdmissionOptions {
  /** How long an admitted frame may wait to be stepped, by the node's estimate (default 40 ms). */
  readonly budgetMs?: number;
  /** The fewest frames a sender may always have waiting (default 4). */
  readonly shareMin?: number;
  /** The most frames waiting at once, whatever the estimate (default 8,192). */
  readonly framesMax?: number;
}

interface Waiting<T> {
  readonly item: T;
  readonly at: number;
}

export type Offer = "admitted" | "overBudget" | "overShare";

/** Starting estimate of the time to step one client frame, before any backlog was measured. */
const costMsInitial = 0.05;
/** The estimate never goes below this (a backlog measured over a tiny slice says little). */
const costMsMin = 0.005;
/**
 * Nor does one sample go above this: a process stopped (SIGSTOP, a stall of the machine)
 * with frames waiting is not the node's pace, and must not shut its clients out after.
 */
const costMsSampleMax = 5;

export class Admission<T> {
  private readonly queues = new Map<string, Waiting<T>[]>();
  private waiting = 0;
  private costMs = costMsInitial;
  private busySince: number | null = null;
  private takenSinceBusy = 0;
  readonly budgetMs: number;
  private readonly shareMin: number;
  private readonly framesMax: number;

  constructor(options: AdmissionOptions = {}) {
    this.budgetMs = options.budgetMs ?? 40;
    this.shareMin = options.shareMin ?? 4;
    this.framesMax = options.framesMax ?? 8_192;
    if (!(this.budgetMs > 0) || !Number.isInteger(this.shareMin) || this.shareMin < 1 || !Number.isInteger(this.framesMax) || this.framesMax < this.shareMin) {
      throw new RangeError("admission needs a positive budget, a share of at least one frame and room for it");
    }
  }

  /** Frames waiting, and senders with frames waiting. */
  get size(): number {
    return this.waiting;
  }

  get senders(): number {
    return this.queues.size;
  }

  /** The frames the node can step within its budget, by its current estimate. */
  get capacity(): number {
    return Math.max(this.shareMin, Math.min(this.framesMax, Math.floor(this.budgetMs / this.costMs)));
  }

  /** The estimated time to step one client frame while busy, in ms. */
  get frameCostMs(): number {
    return this.costMs;
  }

  /**
   * Whether a sender's frame may wait to be stepped. Refused: the queue holds what the node
   * can step within its budget and this sender has at least its share of it (`overShare`),
   * or the queue is twice that, whoever sends (`overBudget`).
   */
  offer(sender: string, item: T, now: number): Offer {
    const capacity = this.capacity;
    const queue = this.queues.get(sender);
    const mine = queue?.length ?? 0;
    if (this.waiting >= 2 * capacity) return "overBudget";
    if (this.waiting >= capacity) {
      const share = Math.max(this.shareMin, Math.floor(capacity / Math.max(1, this.queues.size + (queue === undefined ? 1 : 0))));
      if (mine >= share) return "overShare";
    }
    if (queue === undefined) this.queues.set(sender, [{ item, at: now }]);
    else queue.push({ item, at: now });
    if (this.waiting === 0) {
      this.busySince = now;
      this.takenSinceBusy = 0;
    }
    this.waiting++;
    return "admitted";
  }

  /** The next frame to step: the oldest of the sender whose turn it is. */
  take(): { readonly sender: string; readonly item: T; readonly at: number } | undefined {
    const first = this.queues.entries().next();
    if (first.done === true) return undefined;
    const [sender, queue] = first.value;
    const next = queue.shift() as Waiting<T>;
    // The sender goes to the back of the turn order, or leaves it when it has nothing more.
    this.queues.delete(sender);
    if (queue.length > 0) this.queues.set(sender, queue);
    this.waiting--;
    this.takenSinceBusy++;
    return { sender, item: next.item, at: next.at };
  }

  /**
   * Called after each slice: while a backlog lasts, the time since it began over the frames
   * taken since is the node's real pace for client frames, peers' work and flushes included.
   */
  observe(now: number): void {
    if (this.busySince === null) return;
    if (this.takenSinceBusy >= 16) {
      const sample = Math.min(costMsSampleMax, Math.max(costMsMin, (now - this.busySince) / this.takenSinceBusy));
      this.costMs += (sample - this.costMs) / 4;
      this.busySince = now;
      this.takenSinceBusy = 0;
    }
    if (this.waiting === 0) this.busySince = null;
  }
}
