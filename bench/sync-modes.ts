// `npm run bench:sync`: what one fdatasync costs the node, on the thread pool (`fs.fdatasync`
// with a callback, how the log synced until 2026-12-03) and on the calling thread
// (`fdatasyncSync`, how it syncs a group commit's round now: storage/disk.ts). Each sync
// follows a 600-byte write (a slot's accept record and its frame), either appended to the
// file (it grows, as a log segment does) or written over bytes already there. Reports the
// wall time and the process's CPU (user and kernel, the pool's threads included) per sync,
// rounds interleaved. Writes bench/results/sync-modes.json.

import * as fs from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { loadAverage, round } from "./colony.ts";

const syncs = Number(process.env.SYNCS ?? 2_000);
const rounds = Number(process.env.ROUNDS ?? 3);
const recordBytes = 600;

type Mode = "pool" | "inline";
type Place = "append" | "overwrite";

async function measure(directory: string, mode: Mode, place: Place) {
  const path = join(directory, `${mode}-${place}`);
  const file = fs.openSync(path, "w+");
  const record = new Uint8Array(recordBytes).fill(7);
  if (place === "overwrite") {
    const zeros = new Uint8Array(syncs * recordBytes);
    fs.writeSync(file, zeros, 0, zeros.length, 0);
    fs.fdatasyncSync(file);
  }
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < syncs; i++) {
    fs.writeSync(file, record, 0, record.length, i * recordBytes);
    if (mode === "inline") fs.fdatasyncSync(file);
    else await new Promise<void>((resolve, reject) => fs.fdatasync(file, (error) => (error === null ? resolve() : reject(error))));
  }
  const wallUs = ((performance.now() - started) * 1000) / syncs;
  const used = process.cpuUsage(cpu);
  fs.closeSync(file);
  fs.unlinkSync(path);
  return { wallUs, userUs: used.user / syncs, systemUs: used.system / syncs };
}

const directory = await mkdtemp(join(process.env.SYNC_DIR ?? "/var/tmp", "physalia-sync-"));
const samples = new Map<string, { wallUs: number; userUs: number; systemUs: number }[]>();
try {
  for (let r = 0; r < rounds; r++) {
    for (const place of ["append", "overwrite"] as const) {
      for (const mode of ["pool", "inline"] as const) {
        const result = await measure(directory, mode, place);
        const key = `${mode}/${place}`;
        samples.set(key, [...(samples.get(key) ?? []), result]);
        console.log(`${key.padEnd(18)} wall ${round(result.wallUs, 0)} us, cpu ${round(result.userUs + result.systemUs, 0)} us (kernel ${round(result.systemUs, 0)})`);
      }
    }
  }
} finally {
  await rm(directory, { recursive: true, force: true });
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
const results = {
  when: new Date().toISOString(),
  machine: { cores: cpus().length, model: cpus()[0]?.model ?? "unknown", runtime: typeof Bun === "undefined" ? "other" : `bun ${Bun.version}`, loadAverageAtEnd: loadAverage() },
  setup: { syncs, rounds, recordBytes, directoryParent: process.env.SYNC_DIR ?? "/var/tmp", note: "medians of the rounds; CPU is the whole process's, the thread pool's included" },
  perSync: Object.fromEntries([...samples].map(([key, list]) => [key, { wallUs: round(median(list.map((s) => s.wallUs)), 0), cpuUs: round(median(list.map((s) => s.userUs + s.systemUs)), 0) }])),
};
console.log(JSON.stringify(results.perSync, null, 2));
await writeFile(join(import.meta.dir, "results/sync-modes.json"), `${JSON.stringify(results, null, 2)}\n`);
console.log("wrote bench/results/sync-modes.json");
