// Counters and a latency histogram, rendered in the Prometheus text format.

const latencyBucketsMs = [0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000];

export class Histogram {
  readonly counts = new Array<number>(latencyBucketsMs.length + 1).fill(0);
  sum = 0;
  count = 0;

  observe(valueMs: number): void {
    let i = 0;
    while (i < latencyBucketsMs.length && valueMs > (latencyBucketsMs[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += valueMs;
    this.count++;
  }

  /** The upper bound of the bucket holding the q-th quantile. */
  quantile(q: number): number {
    const target = q * this.count;
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i] as number;
      if (seen >= target && seen > 0) return latencyBucketsMs[i] ?? Infinity;
    }
    return 0;
  }

  render(name: string, help: string): string {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    let cumulative = 0;
    for (let i = 0; i < latencyBucketsMs.length; i++) {
      cumulative += this.counts[i] as number;
      lines.push(`${name}_bucket{le="${latencyBucketsMs[i]}"} ${cumulative}`);
    }
    lines.push(`${name}_bucket{le="+Inf"} ${this.count}`, `${name}_sum ${this.sum}`, `${name}_count ${this.count}`);
    return lines.join("\n");
  }
}

export class Metrics {
  framesReceived = 0;
  framesSent = 0;
  readonly framesDropped = new Map<string, number>();
  readonly replies = new Map<string, number>();
  slotsApplied = 0;
  commandsCommitted = 0;
  recordsWritten = 0;
  syncs = 0;
  readonly syncLatency = new Histogram();

  drop(reason: string): void {
    this.framesDropped.set(reason, (this.framesDropped.get(reason) ?? 0) + 1);
  }

  reply(kind: string): void {
    this.replies.set(kind, (this.replies.get(kind) ?? 0) + 1);
  }

  render(gauges: Record<string, number>): string {
    const out: string[] = [];
    const counter = (name: string, help: string, value: number) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${value}`);
    counter("physalia_frames_received_total", "Frames received and authenticated.", this.framesReceived);
    counter("physalia_frames_sent_total", "Frames sent.", this.framesSent);
    out.push("# HELP physalia_frames_dropped_total Frames dropped, by reason.", "# TYPE physalia_frames_dropped_total counter");
    for (const [reason, count] of this.framesDropped) out.push(`physalia_frames_dropped_total{reason="${reason}"} ${count}`);
    out.push("# HELP physalia_replies_total Client replies, by outcome.", "# TYPE physalia_replies_total counter");
    for (const [kind, count] of this.replies) out.push(`physalia_replies_total{outcome="${kind}"} ${count}`);
    counter("physalia_slots_applied_total", "Log slots applied, over all cells.", this.slotsApplied);
    counter("physalia_commits_total", "Client commands applied by a leader on this node.", this.commandsCommitted);
    counter("physalia_records_written_total", "Records appended to the log.", this.recordsWritten);
    counter("physalia_syncs_total", "Log syncs (fsync).", this.syncs);
    out.push(this.syncLatency.render("physalia_sync_latency_ms", "Log sync latency in milliseconds."));
    for (const [name, value] of Object.entries(gauges)) out.push(`# TYPE ${name} gauge`, `${name} ${value}`);
    return `${out.join("\n")}\n`;
  }
}
