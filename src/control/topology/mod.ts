// The topology model: pure. The file IO is in ./load.ts.

export * from "./address.ts";
export * from "./format.ts";
export * from "./generate.ts";
export * from "./names.ts";
export * from "./parse.ts";
export * from "./types.ts";
export * from "./validate.ts";
