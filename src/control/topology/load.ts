// The only file IO of the topology module: read a topology file and parse it.

import { readFile } from "node:fs/promises";
import { controlLimits } from "../limits.ts";
import { parseTopology } from "./parse.ts";
import { type Topology, TopologyError } from "./types.ts";

export async function loadTopology(path: string): Promise<Topology | TopologyError> {
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.byteLength > controlLimits.topologyBytesMax) {
      return new TopologyError(`Cannot load topology "${path}": the file is larger than ${controlLimits.topologyBytesMax} bytes`);
    }
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error: unknown) {
    const reason = error instanceof Error ? error.message : String(error);
    return new TopologyError(`Cannot load topology "${path}": ${reason}`);
  }
  const topology = parseTopology(text);
  if (topology instanceof TopologyError) return new TopologyError(`${topology.message} (in "${path}")`);
  return topology;
}
