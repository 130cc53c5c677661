// A node's figures, rendered in the Prometheus text format (version 0.0.4) by its
// conventions: base units (seconds, bytes), `_total` on counters, HELP and TYPE on every
// family, and `node` and `color` labels on every physalia series. Also a short history of
// the figures the dashboard draws (goodput, p99 latency, dropped frames).

/** Latency buckets, in seconds: 100 us to 2.5 s. */
const latencyBucketsSeconds = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export type Labels = Readonly<Record<string, string>>;

/** A label value in the text format: backslash, double quote and newline escaped. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  return entries.length === 0 ? "" : `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
}

/** A number in the text format: integers as they are, others with enough digits, never NaN. */
function num(value: number): string {
  if (Number.isNaN(value)) return "0";
  if (value === Infinity) return "+Inf";
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(12)));
}

/** Writes metric families, each once with its HELP and TYPE, and its samples. */
export class Exposition {
  private readonly lines: string[] = [];

  constructor(private readonly common: Labels) {}

  family(name: string, type: "counter" | "gauge" | "histogram", help: string, samples: readonly (readonly [Labels, number])[]): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    // A series' own labels first, then the node's: `{reason="badMac",node="n1",color="blue"}`.
    for (const [labels, value] of samples) this.lines.push(`${name}${labelText({ ...labels, ...this.common })} ${num(value)}`);
  }

  counter(name: string, help: string, value: number): void {
    this.family(name, "counter", help, [[{}, value]]);
  }

  gauge(name: string, help: string, value: number): void {
    this.family(name, "gauge", help, [[{}, value]]);
  }

  /** A family with one series per key of `values`, labelled `label`; a family with no series yet still gets HELP and TYPE. */
  labelled(name: string, type: "counter" | "gauge", help: string, label: string, values: ReadonlyMap<string, number>): void {
    this.family(name, type, help, [...values].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, value]) => [{ [label]: key }, value]));
  }

  histogram(name: string, help: string, histogram: Histogram): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    let cumulative = 0;
    latencyBucketsSeconds.forEach((bound, i) => {
      cumulative += histogram.counts[i] as number;
      this.lines.push(`${name}_bucket${labelText({ le: String(bound), ...this.common })} ${cumulative}`);
    });
    this.lines.push(`${name}_bucket${labelText({ le: "+Inf", ...this.common })} ${histogram.count}`);
    this.lines.push(`${name}_sum${labelText(this.common)} ${num(histogram.sumSeconds)}`, `${name}_count${labelText(this.common)} ${histogram.count}`);
  }

  text(): string {
    return `${this.lines.join("\n")}\n`;
  }
}

export class Histogram {
  readonly counts = new Array<number>(latencyBucketsSeconds.length + 1).fill(0);
  sumSeconds = 0;
  count = 0;

  observeMs(valueMs: number): void {
    const seconds = valueMs / 1000;
    let i = 0;
    while (i < latencyBucketsSeconds.length && seconds > (latencyBucketsSeconds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sumSeconds += seconds;
    this.count++;
  }

  /** The upper bound, in ms, of the bucket holding the q-th quantile of `counts` (e.g. a window's difference); 0 when empty. */
  static quantileMs(counts: readonly number[], q: number): number {
    const total = counts.reduce((a, b) => a + b, 0);
    if (total === 0) return 0;
    let seen = 0;
    for (let i = 0; i < counts.length; i++) {
      seen += counts[i] as number;
      if (seen >= q * total) return 1000 * (latencyBucketsSeconds[i] ?? 2 * (latencyBucketsSeconds.at(-1) as number));
    }
    return 0;
  }
}

/** One point of the dashboard's history: rates over the interval that ends at `atMs`. */
export interface HistoryPoint {
  /** Wall-clock milliseconds. */
  readonly atMs: number;
  readonly goodputPerSecond: number;
  readonly rejectionsPerSecond: number;
  readonly droppedPerSecond: number;
  /** p99 of request latency in the interval, in ms (a bucket's upper bound); 0 without requests. */
  readonly p99Ms: number;
}

/** Points kept: five minutes at one point every two seconds. */
export const historyPointsMax = 150;

export class Metrics {
  framesReceived = 0;
  /** Of those, frames from clients and the control plane (admitted and stepped). */
  clientFramesReceived = 0;
  framesSent = 0;
  readonly framesDropped = new Map<string, number>();
  readonly replies = new Map<string, number>();
  readonly rejections = new Map<string, number>();
  readonly teaching = new Map<string, number>([["entries", 0], ["snapshot", 0]]);
  /** Cell messages sent to peers, by kind (prepare, promise, accept, ...), to tell the work an election costs. */
  readonly messagesSent = new Map<string, number>();
  readonly leaderChanges = new Map<string, number>([["gained", 0], ["lost", 0]]);
  /** Client frames refused before decoding because the node could not step them within its budget (admission.ts). */
  readonly admissionRefused = new Map<string, number>([["overBudget", 0], ["overShare", 0]]);
  elections = 0;
  /** Elections a replica was refused because the node ran as many as it may at once. */
  electionsPaced = 0;
  slotsApplied = 0;
  commandsCommitted = 0;
  recordsWritten = 0;
  /** Of those, chosen records appended without a sync of their own (the next sync covers them). */
  recordsUnsynced = 0;
  syncs = 0;
  readonly syncLatency = new Histogram();
  readonly requestLatency = new Histogram();
  readonly history: HistoryPoint[] = [];
  private last: { atMs: number; commits: number; rejections: number; dropped: number; latency: number[] } | null = null;

  drop(reason: string): void {
    this.framesDropped.set(reason, (this.framesDropped.get(reason) ?? 0) + 1);
  }

  reply(kind: string): void {
    this.replies.set(kind, (this.replies.get(kind) ?? 0) + 1);
  }

  reject(reason: string): void {
    this.rejections.set(reason, (this.rejections.get(reason) ?? 0) + 1);
  }

  count(map: Map<string, number>, key: string): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }

  /** Adds a history point for the interval since the last one (the first call only sets the start). */
  sample(atMs: number): void {
    const sum = (map: ReadonlyMap<string, number>) => [...map.values()].reduce((a, b) => a + b, 0);
    const now = { atMs, commits: this.commandsCommitted, rejections: sum(this.rejections), dropped: sum(this.framesDropped), latency: [...this.requestLatency.counts] };
    const last = this.last;
    this.last = now;
    if (last === null || atMs <= last.atMs) return;
    const seconds = (atMs - last.atMs) / 1000;
    this.history.push({
      atMs,
      goodputPerSecond: (now.commits - last.commits) / seconds,
      rejectionsPerSecond: (now.rejections - last.rejections) / seconds,
      droppedPerSecond: (now.dropped - last.dropped) / seconds,
      p99Ms: Histogram.quantileMs(now.latency.map((c, i) => c - (last.latency[i] ?? 0)), 0.99),
    });
    if (this.history.length > historyPointsMax) this.history.splice(0, this.history.length - historyPointsMax);
  }

  render(labels: Labels, gauges: readonly (readonly [name: string, help: string, value: number])[]): string {
    const out = new Exposition(labels);
    out.counter("physalia_frames_received_total", "Frames received, authenticated and admitted.", this.framesReceived);
    out.counter("physalia_client_frames_received_total", "Of those, frames from clients and the control plane, stepped after admission.", this.clientFramesReceived);
    out.counter("physalia_frames_sent_total", "Frames sent (a chunked message counts once).", this.framesSent);
    out.labelled("physalia_frames_dropped_total", "counter", "Frames and messages dropped, by reason (badMac, unknownKey, replayed, badSchema, unknownCell, ...).", "reason", this.framesDropped);
    out.labelled("physalia_replies_total", "counter", "Replies to clients, by outcome (done, read, redirect, overloaded, unavailable, stale, node, ...).", "outcome", this.replies);
    out.counter("physalia_commits_total", "Client commands committed through a cell's log and answered by this node.", this.commandsCommitted);
    out.labelled("physalia_rejections_total", "counter", "Client commands answered with a rejection, by reason (valueTooLarge, cellFull, sessionsFull, tooManyPending, ...).", "reason", this.rejections);
    out.histogram("physalia_request_duration_seconds", "Time from a client request's arrival to its final answer (done or read) on this node.", this.requestLatency);
    out.counter("physalia_slots_applied_total", "Log slots applied, over all cells.", this.slotsApplied);
    out.labelled("physalia_leader_changes_total", "counter", "Times a replica on this node became leader (gained) or stopped leading (lost).", "change", this.leaderChanges);
    out.labelled("physalia_client_frames_refused_total", "counter", "Client frames refused before decoding, their requests answered overloaded: overShare (the sender held its share of a full queue) or overBudget (the queue held twice what the node steps within its budget).", "reason", this.admissionRefused);
    out.counter("physalia_elections_total", "Times a replica on this node started phase 1 to become leader.", this.elections);
    out.counter("physalia_elections_paced_total", "Elections refused for now because the node ran as many at once as it may (the request was answered overloaded, or the hole waits).", this.electionsPaced);
    out.labelled("physalia_peer_messages_sent_total", "counter", "Cell messages sent to peer nodes, by kind (prepare, promise, accept, accepted, commit, nack, learn, teach); many share a frame.", "kind", this.messagesSent);
    out.labelled("physalia_teach_messages_total", "counter", "Teach messages sent to replicas that fell behind, by what they carried (log entries or a snapshot).", "kind", this.teaching);
    out.counter("physalia_log_records_written_total", "Records appended to the log.", this.recordsWritten);
    out.counter("physalia_log_records_unsynced_total", "Chosen records appended without waiting for a sync (knowledge, not votes: the next sync covers them).", this.recordsUnsynced);
    out.counter("physalia_log_syncs_total", "Log syncs (fsync).", this.syncs);
    out.histogram("physalia_log_sync_duration_seconds", "Time one log sync (fsync) took.", this.syncLatency);
    for (const [name, help, value] of gauges) out.gauge(name, help, value);
    return out.text();
  }
}

export interface BuildInfo {
  readonly version: string;
  readonly runtime: string;
  readonly runtimeVersion: string;
}

/** Wall-clock seconds at which this process started (for process_start_time_seconds). */
const processStartSeconds = Date.now() / 1000 - process.uptime();

/** physalia_build_info and the process figures Prometheus's clients conventionally export. */
export function renderProcessMetrics(labels: Labels, build: BuildInfo, openFds: number | null): string {
  const out = new Exposition({});
  out.family("physalia_build_info", "gauge", "Always 1: the version and runtime this node runs.", [[{ ...labels, version: build.version, runtime: build.runtime, runtime_version: build.runtimeVersion }, 1]]);
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  out.counter("process_cpu_user_seconds_total", "User CPU time spent, in seconds.", cpu.user / 1e6);
  out.counter("process_cpu_system_seconds_total", "System CPU time spent, in seconds.", cpu.system / 1e6);
  out.counter("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", (cpu.user + cpu.system) / 1e6);
  out.gauge("process_resident_memory_bytes", "Resident memory size, in bytes.", memory.rss);
  out.gauge("process_heap_bytes", "JavaScript heap in use, in bytes.", memory.heapUsed);
  out.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.", processStartSeconds);
  if (openFds !== null) out.gauge("process_open_fds", "Open file descriptors.", openFds);
  return out.text();
}
