export * from "./assert.ts";
export * from "./bytes.ts";
export * from "./kv.ts";
export * from "./snapshot.ts";
export * from "./transaction.ts";
export * from "./value.ts";
