// History recording and the linearizability checker.
export * from "./explain.ts";
export * from "./linearizable.ts";
export * from "./operation.ts";
export * from "./recorder.ts";
export * from "./results.ts";
export * from "./session.ts";
export * from "./verdict.ts";
