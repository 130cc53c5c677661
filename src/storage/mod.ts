// The node's log: one append-only, segmented file log shared by every cell of a node, with
// group commit, checksummed frames, recovery that tells a torn tail from damage, and compaction.

export { crc32c } from "./crc32c.ts";
export { type Disk, type FileHandle, nodeDisk } from "./disk.ts";
export { LogOpenError, RecordTooLargeError, StorageFailed } from "./errors.ts";
export { isIncarnation, parseSegmentName, segmentName } from "./format.ts";
export { storageLimits } from "./limits.ts";
export { type LogOptions, NodeLog, type OpenedLog, moveLogAside, openLog } from "./log.ts";
export { type CrashMode, type DiskOperation, MemoryDisk, type MemoryDiskOptions, type PowerLoss, sectorBytes } from "./memory.ts";
export type { Damage, RecoveryStats, TornTail } from "./recover.ts";
export type { FaultReason } from "./scan.ts";
