export * from "./cluster.ts";
export * from "./load.ts";
export * from "./placer.ts";
export * from "./random.ts";
export * from "./rules.ts";
export * from "./select.ts";
export * from "./types.ts";
