// The log's expected failures, as error classes with `name` set. A broken invariant (a bug in
// the log or its caller) is an AssertionError from core/assert.ts instead.

/**
 * The disk failed under the log (an fsync, a write, a file we could not create or remove).
 * Fatal: the log rejects every pending and later call with this error and never retries,
 * because after a failed fsync the kernel may already have dropped the dirty pages it could
 * not write, so a retry that succeeds would claim durability for data that is gone. The node
 * must exit and recover from what is on disk.
 */
export class StorageFailed extends Error {
  override name = "StorageFailed";
}

/**
 * The log directory cannot be opened at all: unreadable, or written by another format version.
 * Damage is not an error: `openLog` reports it (see recover.ts).
 */
export class LogOpenError extends Error {
  override name = "LogOpenError";
}

/** A record whose encoding exceeds `storageLimits.recordBytesMax`; nothing of its batch was appended. */
export class RecordTooLargeError extends Error {
  override name = "RecordTooLargeError";
}

/** The message of any thrown value, for wrapping it into one of ours. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
