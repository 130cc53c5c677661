// Text to topology: a pure function that returns an error value for any bad input.

import { controlLimits } from "../limits.ts";
import { type Topology, TopologyError } from "./types.ts";
import { validateTopology } from "./validate.ts";

export function parseTopology(text: string): Topology | TopologyError {
  if (text.length > controlLimits.topologyBytesMax) {
    return new TopologyError(`Cannot parse topology: the text is longer than ${controlLimits.topologyBytesMax} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error: unknown) {
    const reason = error instanceof Error ? error.message : String(error);
    return new TopologyError(`Cannot parse topology: invalid JSON: ${reason}`);
  }
  return validateTopology(value);
}
