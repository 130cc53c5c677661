// Every bound in physalia lives here, so that the relations between them can be checked once,
// when this module loads (TigerBeetle's habit: "put a limit on everything").
// Names carry their unit last.

export const limits = {
  // The data model.
  keyBytesMax: 256,
  valueBytesMax: 4096,
  /** Integers are arbitrary precision up to this many bits of magnitude. */
  integerBitsMax: 256,
  keysPerTransactionMax: 64,
  /** Sum of key and value bytes named by one transaction. */
  transactionBytesMax: 16 * 1024,
  /** Bookkeeping cost charged per stored key, so that many tiny keys still fill a cell. */
  entryOverheadBytes: 16,
  cellBytesMax: 1024 * 1024,
  scanPageKeysMax: 256,
  scanPageBytesMax: 64 * 1024,

  // The cell.
  /** Replicas in one cell: 7 by default, a few more while a member is being replaced. */
  cellMembersMax: 9,
  /** No membership change takes a cell below this many members (a genesis may be smaller). */
  cellMembersMin: 3,
  /** α: slots in flight at once, and the distance at which a membership change takes effect. */
  pipelineDepthDefault: 3,
  pipelineDepthMax: 8,
  /** Client commands a replica holds while its pipeline is full; more are refused as overloaded. */
  queueCommandsMax: 64,
  batchCommandsMax: 32,
  batchBytesMax: 40 * 1024,
  /**
   * Live client sessions a cell holds (each remembers its last result, to answer a retry
   * without applying it twice). When the table is full, opening another is refused
   * (`sessionsFull`) until one is closed or expires; no live session is ever forgotten.
   */
  sessionsPerCellMax: 128,
  /** Leases one cell holds; acquiring another is refused (`leasesFull`) while that many are held. */
  leasesPerCellMax: 64,
  leaseNameBytesMax: 256,
  leaseTtlMsMin: 10,
  leaseTtlMsMax: 24 * 60 * 60 * 1000,
  /**
   * The factor by which any node's clock may run faster than another's (the paper's bound).
   * A lease holder counts only `ttl / clockRateRatioMax` of its own clock as held.
   */
  clockRateRatioMax: 3,
  /** Answers a session keeps until its client acknowledges them: the commands one client may have in flight. */
  sessionPendingMax: 64,
  /** A session unused for this long, in the cell's log-carried time, expires (default; set per cell at creation). */
  sessionTtlMsDefault: 60_000,
  sessionTtlMsMin: 100,
  sessionTtlMsMax: 24 * 60 * 60 * 1000,
  /** Applied log entries kept in memory for teaching by log segment; older ones need a snapshot. */
  logTailEntriesMax: 64,
  teachEntriesMax: 32,

  // Cell timing, in milliseconds of the node's own clock. Jitter is added by the replica.
  retransmitMs: 30,
  retransmitBackoffMaxMs: 480,
  learnRetryMs: 60,
  /**
   * A leader that applied a slot tells its followers with its next accept (which carries
   * `chosenThrough`), or with a commit of its own once this long passed without one. At one
   * client a commit to six peers was six of a slot's thirteen datagrams, each a wake-up.
   */
  commitDelayMs: 10,
  /**
   * A follower that heard from its leader (or a candidate it promised) this recently, and
   * sees it alive, redirects even a client that asks it to take over (`force`). The failover
   * work raised it to the liveness timeout (600 ms), which cut a 10,000-cell failover's
   * elections tenfold (bench/failover.ts), but the simworld found a runaway with it (seed
   * 714365 with nine nodes and membership faults: more than three million events in 3 s, where
   * forced requests kept being redirected to a replica that could not serve); at 100 ms, the
   * value soaked before, that seed passes. Raising it again needs that livelock understood.
   */
  leaderQuietMs: 100,
  /** How long a learner waits on a hole in its log before it proposes a no-op into it. */
  holeWaitMs: 150,
  /** Attempts at phase 1 while requests wait; after that the replica drops them and goes quiet. */
  candidateAttemptsMax: 10,

  // The wire.
  /** A plain id: a topology name (node, color, row...) or a client id, of [A-Za-z0-9._-]. */
  plainIdBytesMax: 64,
  /** A node's incarnation, appended to its plain id as `~` and this many lowercase hex digits. */
  incarnationHexDigits: 16,
  /** Any id in a frame or a message: a plain id, or a node's `id~incarnation`. */
  nodeIdBytesMax: 64 + 1 + 16,
  /** The largest frame we put into one datagram (UDP payload limit is 65507 bytes). */
  frameBytesMax: 65_000,
  /** A message body may be larger than a frame only when the transport chunks it. */
  messageBytesMax: 4 * 1024 * 1024,
  keySecretBytesMin: 32,
  keySecretBytesMax: 128,
} as const;

function check(condition: boolean, relation: string): void {
  if (!condition) throw new Error(`Invalid limits: ${relation}`);
}

check(limits.keyBytesMax + limits.valueBytesMax <= limits.transactionBytesMax, "one put must fit a transaction");
check(limits.transactionBytesMax < limits.frameBytesMax / 2, "a transaction must fit a frame with room to spare");
check(limits.keyBytesMax + limits.valueBytesMax + limits.entryOverheadBytes < limits.scanPageBytesMax, "one entry must fit a scan page");
check(limits.integerBitsMax / 8 + 1 <= limits.valueBytesMax, "the largest integer must be a legal value");
check(limits.transactionBytesMax <= limits.cellBytesMax, "a transaction must fit an empty cell");
check(limits.nodeIdBytesMax === limits.plainIdBytesMax + 1 + limits.incarnationHexDigits, "a node id is a plain id, a tilde and an incarnation");
check(limits.nodeIdBytesMax <= 255, "an id's length must fit the frame header's length byte");
check(limits.frameBytesMax <= 65_507, "a frame must fit one UDP datagram");
check(limits.batchBytesMax >= limits.transactionBytesMax, "one transaction must fit a batch");
check(limits.batchBytesMax + 4096 <= limits.frameBytesMax, "an accept carrying a full batch must fit a frame");
check(limits.pipelineDepthDefault >= 1 && limits.pipelineDepthDefault <= limits.pipelineDepthMax, "the default pipeline depth must be legal");
check(limits.cellMembersMin >= 1 && limits.cellMembersMin < limits.cellMembersMax, "a cell can grow past its smallest size");
check(limits.sessionTtlMsMin <= limits.sessionTtlMsDefault && limits.sessionTtlMsDefault <= limits.sessionTtlMsMax, "the default session lifetime must be legal");
check(limits.batchCommandsMax <= 64, "a session id packs a command's place in its batch into 6 bits");
check(limits.teachEntriesMax <= limits.logTailEntriesMax, "a teach message cannot carry more than the tail holds");
check(limits.cellBytesMax * 2 <= limits.messageBytesMax, "a snapshot of a full cell must fit one message");
