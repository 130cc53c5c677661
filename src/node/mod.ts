export * from "./deadlines.ts";
export * from "./log.ts";
export * from "./metrics.ts";
export * from "./node.ts";
