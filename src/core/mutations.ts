// Deliberately broken variants of the cell core, for showing that the simworld and the
// explorer catch each class of bug (FoundationDB's habit: the tools are tested too). A
// mutation is chosen when a replica is built and never in production: nodes pass none.

/**
 * - latePromise: a leader counts a promise whose sender compacted slots it has not applied
 *   itself (such a promise reports no votes for them), so it may propose into a chosen slot;
 * - emptyAck: an acceptor acknowledges an accept for a slot it already holds as chosen or
 *   applied, without holding the proposed value, so its "vote" backs a value it never stored;
 * - lruSessions: the session table forgets its least recently used session when it is full,
 *   and a command for a forgotten session is applied as if the session were new;
 * - earlyOwnVote: a leader counts its own vote the moment it casts it, before the record is
 *   durable, although its accepts and replies no longer wait for its log.
 */
export const mutationKinds = ["latePromise", "emptyAck", "lruSessions", "earlyOwnVote"] as const;
export type Mutation = (typeof mutationKinds)[number];
