// The node's log: one append-only, segmented file log shared by every cell of a node, with
// group commit, checksummed frames, recovery that stops at the first damage, and compaction.

export { crc32c } from "./crc32c.ts";
export { type Disk, type FileHandle, nodeDisk } from "./disk.ts";
export { LogOpenError, RecordTooLargeError, StorageFailed } from "./errors.ts";
export { parseSegmentName, segmentName } from "./format.ts";
export { storageLimits } from "./limits.ts";
export { type LogOptions, NodeLog, type OpenedLog, openLog } from "./log.ts";
export { type CrashMode, type DiskOperation, MemoryDisk, type MemoryDiskOptions, type PowerLoss } from "./memory.ts";
export type { Damage, RecoveryStats } from "./recover.ts";
export type { DamageReason } from "./scan.ts";
