export * from "./chunks.ts";
export * from "./transport.ts";
export * from "./udp.ts";
export * from "./http.ts";
