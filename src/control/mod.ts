// The control plane: the topology model, placement, repair and move. Everything here is
// pure and deterministic except loadTopology, the one function that reads a file.

export * from "./limits.ts";
export * from "./placement/mod.ts";
export * from "../random.ts";
export * from "./topology/load.ts";
export * from "./topology/mod.ts";
