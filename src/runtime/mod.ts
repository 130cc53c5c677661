// The one runtime this process runs on, chosen when the module loads: Bun or Deno. This is
// the only place that looks for the runtimes' globals.

import { type BunApi, bunRuntime } from "./bun.ts";
import { type DenoApi, denoRuntime } from "./deno.ts";
import type { Runtime } from "./types.ts";

export * from "./types.ts";

function detect(): Runtime {
  const globals = globalThis as unknown as { Bun?: BunApi; Deno?: DenoApi };
  if (globals.Deno !== undefined) return denoRuntime(globals.Deno);
  if (globals.Bun !== undefined) return bunRuntime(globals.Bun);
  // Node has neither global; physalia needs one of the two runtimes it is built for.
  throw new Error("physalia runs on Bun or Deno; this runtime is neither");
}

export const runtime: Runtime = detect();
