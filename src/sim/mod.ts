export * from "./options.ts";
export * from "./rng.ts";
export * from "./world.ts";
