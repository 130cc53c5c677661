// The runtime on Deno. Datagrams go through Deno.listenDatagram when it is enabled
// (--unstable-net; deno.json enables it) and through node:dgram otherwise: on loopback the
// native API measured a little faster (bench/runtime/pingpong.ts). HTTP is Deno.serve and
// children are Deno.Command. Deno's global is reached through the small typed view below,
// so that this file also type-checks under tsc with Bun's types.

import { fileURLToPath } from "node:url";
import { openNodeDatagram } from "./dgram.ts";
import { type LockCalls, libc, lockWith } from "./flock.ts";
import { type ChildProcess, type FileLock, type DatagramOptions, type DatagramSocket, type HttpHandler, type HttpServer, type Runtime, type SignalName, type SocketAddress, type SpawnOptions, RuntimeError } from "./types.ts";

interface DenoAddr {
  readonly transport: string;
  readonly hostname: string;
  readonly port: number;
}

interface DenoDatagramConn {
  readonly addr: DenoAddr;
  receive(): Promise<[Uint8Array, DenoAddr]>;
  send(bytes: Uint8Array, to: { transport: "udp"; hostname: string; port: number }): Promise<number>;
  close(): void;
}

interface DenoFile {
  readonly writable: WritableStream<Uint8Array>;
}

interface DenoChild {
  readonly pid: number;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly status: Promise<{ code: number; signal: string | null }>;
  kill(signal?: string): void;
}

/** The part of Deno's global this runtime uses. */
export interface DenoApi {
  readonly version: { readonly deno: string };
  readonly build: { readonly standalone?: boolean };
  readonly mainModule: string;
  execPath(): string;
  listenDatagram?: (options: { transport: "udp"; hostname: string; port: number }) => DenoDatagramConn;
  serve(options: { hostname: string; port: number; onListen: () => void; onError: (error: unknown) => Response }, handler: HttpHandler): { readonly addr: DenoAddr; shutdown(): Promise<void> };
  Command: new (command: string, options: { args: string[]; stdin: "null"; stdout: "piped" | "null"; stderr: "piped" | "null" }) => { spawn(): DenoChild };
  openSync(path: string, options: { write: true; create: true; truncate: true }): DenoFile;
  readonly errors: { readonly BadResource: new () => Error; readonly Interrupted: new () => Error };
  dlopen(path: string, symbols: Record<string, { parameters: string[]; result: string }>): { symbols: Record<string, (...args: number[]) => unknown> };
  readonly UnsafePointerView: new (pointer: unknown) => { getInt32(offset: number): number };
}

export function denoRuntime(deno: DenoApi): Runtime {
  const nativeDatagrams = typeof deno.listenDatagram === "function";
  const compiled = deno.build.standalone === true;
  return {
    name: "deno",
    version: deno.version.deno,
    compiled,
    openDatagram: (options) => (nativeDatagrams ? openDenoDatagram(deno, options) : openNodeDatagram(options)),
    async serveHttp(local: SocketAddress, handler: HttpHandler): Promise<HttpServer> {
      const server = deno.serve({ hostname: local.host, port: local.port, onListen: () => {}, onError: () => new Response("error\n", { status: 500 }) }, handler);
      return { port: server.addr.port, stop: () => void server.shutdown().catch(() => {}) };
    },
    spawn(argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
      const [command, ...args] = argv;
      if (command === undefined) throw new RuntimeError("Cannot start a process: no command");
      const child = new deno.Command(command, {
        args,
        stdin: "null",
        stdout: options.stdoutPath === undefined ? "null" : "piped",
        stderr: options.stderrPath === undefined ? "null" : "piped",
      }).spawn();
      // Output is copied to the files as it comes; a copy that fails (a full disk) loses output, not the child.
      if (options.stdoutPath !== undefined) void child.stdout.pipeTo(deno.openSync(options.stdoutPath, { write: true, create: true, truncate: true }).writable).catch(() => {});
      if (options.stderrPath !== undefined) void child.stderr.pipeTo(deno.openSync(options.stderrPath, { write: true, create: true, truncate: true }).writable).catch(() => {});
      let exitCode: number | null = null;
      const exited = child.status.then((status) => {
        exitCode = status.code;
        return status.code;
      });
      return {
        pid: child.pid,
        get exitCode() {
          return exitCode;
        },
        exited,
        kill(signal: SignalName = "SIGTERM") {
          try {
            child.kill(signal);
          } catch {
            // Already gone.
          }
        },
      };
    },
    sleep: (ms: number) => new Promise((resolve) => setTimeout(resolve, ms)),
    // Deno exposes no collector to programs (without --v8-flags=--expose-gc).
    collectGarbage: () => {},
    lockFile(path: string): Promise<FileLock | null> {
      try {
        return Promise.resolve(lockWith(denoLockCalls(deno), path));
      } catch (error) {
        return Promise.reject(error);
      }
    },
    selfCommand(): string[] {
      if (compiled) return [deno.execPath()];
      return [deno.execPath(), "run", "-A", ...(nativeDatagrams ? ["--unstable-net"] : []), fileURLToPath(deno.mainModule)];
    },
  };
}

let denoCalls: LockCalls | null = null;

/** flock and errno through Deno.dlopen (needs --allow-ffi, which -A gives), loaded once. */
function denoLockCalls(deno: DenoApi): LockCalls {
  if (denoCalls !== null) return denoCalls;
  const { path, errnoSymbol } = libc();
  let lib;
  try {
    lib = deno.dlopen(path, { flock: { parameters: ["i32", "i32"], result: "i32" }, [errnoSymbol]: { parameters: [], result: "pointer" } });
  } catch (error) {
    throw new RuntimeError(`Cannot lock files: cannot load ${path} through Deno.dlopen (run with -A or --allow-ffi): ${error instanceof Error ? error.message : String(error)}`);
  }
  const symbols = lib.symbols;
  denoCalls = {
    flock: (fd, operation) => symbols.flock?.(fd, operation) as number,
    errno: () => new deno.UnsafePointerView(symbols[errnoSymbol]?.()).getInt32(0),
  };
  return denoCalls;
}

async function openDenoDatagram(deno: DenoApi, { local, onData }: DatagramOptions): Promise<DatagramSocket> {
  const listen = deno.listenDatagram as NonNullable<DenoApi["listenDatagram"]>;
  const conn = listen({ transport: "udp", hostname: local.host, port: local.port });
  let open = true;
  void (async () => {
    while (open) {
      let received: [Uint8Array, DenoAddr];
      try {
        received = await conn.receive();
      } catch (error) {
        // A closed socket ends the loop. Anything else (an ICMP "port unreachable" from a
        // peer that is down, reported on the next call) is the network's answer: go on.
        if (!open || error instanceof deno.errors.BadResource || error instanceof deno.errors.Interrupted) return;
        continue;
      }
      const [bytes, from] = received;
      onData(bytes, { host: from.hostname, port: from.port });
    }
  })();
  return {
    port: conn.addr.port,
    // Deno's datagram API does not let a program size or read the receive buffer.
    receiveBufferBytes: null,
    send(bytes: Uint8Array, to: SocketAddress) {
      if (!open) return;
      conn.send(bytes, { transport: "udp", hostname: to.host, port: to.port }).catch(() => {});
    },
    close() {
      if (!open) return;
      open = false;
      conn.close();
    },
  };
}
