export * from "./cbor.ts";
export * from "./frame.ts";
export * from "./keyring.ts";
export * from "./message.ts";
export * from "./schema.ts";
export * from "./records.ts";
