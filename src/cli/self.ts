// How to start another process of this same program, from sources or from the binary, on
// the runtime this one runs on.

import { runtime } from "../runtime/mod.ts";

export function selfCommand(): string[] {
  return runtime.selfCommand();
}
