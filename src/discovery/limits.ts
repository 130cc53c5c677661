// Every bound and default of the discovery layer lives here, next to the relations between
// them, which are checked once when this module loads. Names carry their unit last.
// Durations are milliseconds of the caller's clock; the module never reads a clock itself.

import { limits } from "../limits.ts";

export const discoveryLimits = {
  // Names.
  /** A cell name is 1 to this many bytes of well-formed UTF-8. */
  cellNameBytesMax: 256,
  /** A cell's members: 7 by default, a few more while one is being replaced. */
  membersMax: limits.cellMembersMax,
  /** A node id (the part of an identity before "~"); the topology's bound. */
  nodeIdBytesMax: limits.nodeIdBytesMax,
  /** "host:port" or "[ipv6]:port": a 253-byte hostname, brackets, a colon and five digits. */
  addressBytesMax: 262,
  /** Distinct node identities one store can name at once (members are stored as 16-bit indices). */
  identitiesMax: 65_535,

  // The digest tree over the key space.
  /** Leaves of the digest tree are the top `leafBits` bits of a cell name's 32-bit hash. */
  leafBitsMin: 4,
  leafBitsMax: 20,
  /** 2^16 leaves: about 15 entries a leaf at a million cells. */
  leafBitsDefault: 16,
  /** Each descent step goes down this many bits: 16 children a subtree. */
  treeStepBits: 4,

  // One gossip session: a random peer, digests first, then only the differing entries.
  gossipRoundMsDefault: 1_000,
  /** What one side may send in one session, both sides counting their own sends. */
  sessionBytesMaxDefault: 64 * 1024,
  /** No single message may be larger than this (a frame holds 65,000 bytes with its header). */
  messageBytesMax: 60_000,
  /** Messages in one session (descent, leaves, entries, answers); a session ends there. */
  sessionStepsMax: 12,
  /**
   * A node that holds a tenth fewer entries than a peer reported (it restarted empty, say)
   * opens this many sessions a round instead of one, until it has caught up.
   */
  catchUpSessionsMax: 4,
  /** Sessions a node answers at once; more are answered with a liveness ack only. */
  answeredSessionsMax: 4,
  replyTimeoutMsDefault: 200,
  /** The opening message is sent this many times before the peer is suspected. */
  openAttemptsMax: 3,
  /** Sessions are forgotten after this long without a message. */
  sessionIdleMs: 5_000,

  // Peers: liveness and addresses, spread by rumors and by anti-entropy.
  peersMax: 200_000,
  /** A suspected peer that does not refute within this long is declared dead. */
  suspectTimeoutMsDefault: 6_000,
  /** One round in this many probes a peer believed dead, so that partitions heal. */
  deadProbeEveryRounds: 8,
  rumorsMax: 1_024,
  rumorsPerMessageMax: 48,
  /** Each rumor is sent in about this many times log2(peers) messages. */
  rumorSpreadFactor: 3,
  /** Peer records are bucketed by a hash of the node id for anti-entropy. */
  peerBuckets: 64,
  peerRecordsPerMessageMax: 256,
  /**
   * Peer reports in one answer to a peers request (the control plane's view of node health);
   * an answer also stops at `messageBytesMax`, about 500 reports of the longest ids and addresses.
   */
  peerReportsPerAnswerMax: 4_096,

  // Cells: pushes, refreshes, expiry.
  /** An entry no member has refreshed for this long is dropped (it names a cell that is gone). */
  entryLifetimeMsDefault: 24 * 60 * 60 * 1000,
  /** A leader re-stamps its cell's entry this often; a follower at twice this age. */
  refreshIntervalMsDefault: 4 * 60 * 60 * 1000,
  /** Entries stamped further than this in the future of the receiver's clock are refused. */
  clockSkewMsMax: 60_000,
  /** Hosted cells compared with the local replica per round (the batched refresh). */
  auditsPerRoundDefault: 1_024,
  /** Entries checked for expiry per round. */
  sweepsPerRoundDefault: 4_096,

  // Forwarding pointers.
  pointerLifetimeMsDefault: 24 * 60 * 60 * 1000,
  pointersMaxDefault: 131_072,

  // Lookups and the client cache.
  /** Cells named in one lookup; an answer that would not fit one message answers fewer. */
  lookupCellsMax: 64,
  clientCellsMaxDefault: 100_000,
  /** A client asks at most this many nodes about one cell before it reports "no such cell". */
  clientLookupAttemptsMax: 3,
  clientLookupRetryMsDefault: 500,
  clientAddressesMax: 200_000,
} as const;

function check(condition: boolean, relation: string): void {
  if (!condition) throw new Error(`Invalid discovery limits: ${relation}`);
}

const d = discoveryLimits;
check(d.leafBitsDefault >= d.leafBitsMin && d.leafBitsDefault <= d.leafBitsMax, "the default leaf bits must be legal");
check(d.treeStepBits >= 1 && d.treeStepBits <= d.leafBitsMin, "a descent step must fit the smallest tree");
check(d.messageBytesMax + 5_000 <= limits.frameBytesMax, "a gossip message must fit a frame with its header");
check(d.sessionBytesMaxDefault >= d.messageBytesMax, "one session must be able to send one full message");
check(d.membersMax <= 15, "a member count fits four bits");
check(d.identitiesMax <= 0xffff, "member indices fit 16 bits");
check(d.refreshIntervalMsDefault * 2 + d.clockSkewMsMax < d.entryLifetimeMsDefault, "a follower's refresh must come before the entry expires");
check(d.replyTimeoutMsDefault * d.openAttemptsMax < d.gossipRoundMsDefault, "a probe must end within its round");
check(d.suspectTimeoutMsDefault >= 3 * d.gossipRoundMsDefault, "a suspected peer must have several rounds to refute");
check(d.rumorsPerMessageMax <= d.rumorsMax, "a message cannot carry more rumors than the queue holds");
check(d.peerRecordsPerMessageMax >= d.rumorsPerMessageMax, "peer records of one bucket batch cover the rumor batch");
// The largest entry: a name, nine identities of 81 bytes, and fixed fields with their keys.
const entryBytesMax = d.cellNameBytesMax + 10 * (d.nodeIdBytesMax + 20) + 128;
const peerInfoBytesMax = d.nodeIdBytesMax + 20 + d.addressBytesMax + 32;
check(2 * entryBytesMax + d.membersMax * 2 * peerInfoBytesMax <= d.messageBytesMax, "one cell's fullest lookup answer fits one message");
check(d.lookupCellsMax * (d.cellNameBytesMax + 3) <= d.messageBytesMax, "a full lookup request fits one message");
