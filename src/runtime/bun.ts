// The runtime on Bun: its native UDP sockets (measured fastest there: bench/runtime/pingpong.ts),
// Bun.serve and Bun.spawn. Bun's globals are reached through the small typed view below
// rather than bun-types, so that this file also type-checks under `deno check`.

import { type LockCalls, libc, lockWith } from "./flock.ts";
import { type ChildProcess, type FileLock, type DatagramOptions, type DatagramSocket, type HttpHandler, type HttpServer, type Runtime, type SocketAddress, type SpawnOptions, errorText, RuntimeError } from "./types.ts";

interface BunUdpSocket {
  readonly port: number;
  /** The socket's file descriptor (Bun exposes it; not in every version's types). */
  readonly fd?: number;
  send(data: Uint8Array, port: number, address: string): boolean;
  close(): void;
}

interface BunSubprocess {
  readonly pid: number;
  readonly exitCode: number | null;
  readonly signalCode: string | null;
  readonly exited: Promise<number>;
  kill(signal?: string): void;
}

/** The part of Bun's global this runtime uses. */
export interface BunApi {
  readonly version: string;
  readonly main: string;
  udpSocket(options: {
    hostname: string;
    port: number;
    binaryType: "uint8array";
    socket: { data(socket: unknown, data: Uint8Array, port: number, address: string): void; error(error: unknown): void };
  }): Promise<BunUdpSocket>;
  serve(options: { hostname: string; port: number; fetch: HttpHandler; error?: (error: unknown) => Response }): { readonly port: number | undefined; stop(force?: boolean): unknown };
  spawn(argv: string[], options: { stdout: unknown; stderr: unknown; stdin: "ignore" }): BunSubprocess;
  file(path: string): unknown;
  sleep(ms: number): Promise<void>;
  gc(force: boolean): void;
}

/** Pending socket errors a send may have to clear before it goes out. */
const sendAttemptsMax = 8;

export function bunRuntime(bun: BunApi): Runtime {
  return {
    name: "bun",
    version: bun.version,
    compiled: !(bun.main.endsWith(".ts") || bun.main.endsWith(".js")),
    async openDatagram({ local, onData, receiveBufferBytes }: DatagramOptions): Promise<DatagramSocket> {
      const socket = await bun.udpSocket({
        hostname: local.host,
        port: local.port,
        binaryType: "uint8array",
        socket: {
          data(_socket, data, port, address) {
            onData(data, { host: address, port });
          },
          // An ICMP "port unreachable" from a peer that is down surfaces as ECONNREFUSED on the
          // socket. It is the network's answer, not our error: the protocol copes with loss.
          error() {},
        },
      });
      const granted = receiveBufferBytes === undefined || socket.fd === undefined ? null : await setReceiveBuffer(socket.fd, receiveBufferBytes);
      return {
        port: socket.port,
        receiveBufferBytes: granted,
        send(bytes: Uint8Array, to: SocketAddress) {
          // Linux reports an ICMP "port unreachable" on the socket's next call, so a send to a
          // live peer can throw ECONNREFUSED for an earlier send to a dead one. The throw
          // consumed that error: send again. Swallowing it instead would silently lose the
          // datagram, and a colony with dead nodes could not elect a leader.
          for (let attempt = 0; attempt < sendAttemptsMax; attempt++) {
            try {
              socket.send(bytes, to.port, to.host);
              return;
            } catch {
              // Try again: each throw clears one pending error.
            }
          }
        },
        close: () => socket.close(),
      };
    },
    async serveHttp(local: SocketAddress, handler: HttpHandler): Promise<HttpServer> {
      const server = bun.serve({ hostname: local.host, port: local.port, fetch: handler, error: (error) => new Response(`error: ${errorText(error)}\n`, { status: 500 }) });
      return { port: server.port ?? local.port, stop: () => void server.stop(true) };
    },
    spawn(argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
      if (argv.length === 0) throw new RuntimeError("Cannot start a process: no command");
      const child = bun.spawn([...argv], {
        stdin: "ignore",
        stdout: options.stdoutPath === undefined ? "ignore" : bun.file(options.stdoutPath),
        stderr: options.stderrPath === undefined ? "ignore" : bun.file(options.stderrPath),
      });
      return {
        pid: child.pid,
        get exitCode() {
          return child.exitCode ?? (child.signalCode === null ? null : 128 + signalNumber(child.signalCode));
        },
        exited: child.exited.then(() => child.exitCode ?? 128 + signalNumber(child.signalCode ?? "SIGKILL")),
        kill: (signal = "SIGTERM") => child.kill(signal),
      };
    },
    sleep: (ms: number) => bun.sleep(ms),
    collectGarbage: () => bun.gc(true),
    async lockFile(path: string): Promise<FileLock | null> {
      return lockWith(await bunLockCalls(), path);
    },
    selfCommand(): string[] {
      return this.compiled ? [process.execPath] : [process.execPath, bun.main];
    },
  };
}

interface BunFfi {
  dlopen(path: string, symbols: Record<string, { args: string[]; returns: string }>): { symbols: Record<string, (...args: unknown[]) => unknown> };
  read: { i32(pointer: unknown, offset: number): number };
  ptr(view: ArrayBufferView): unknown;
}

// Linux's socket option numbers (asm-generic; x86-64 and arm64 alike).
const solSocket = 1;
const soRcvbuf = 8;
const soRcvbufForce = 33;

let socketCalls: { setsockopt(fd: number, level: number, name: number, value: unknown, length: number): number; getsockopt(fd: number, level: number, name: number, value: unknown, length: unknown): number; ptr(view: ArrayBufferView): unknown } | null | undefined;

/**
 * Asks for a receive buffer of `bytes` through bun:ffi: SO_RCVBUFFORCE first (root may pass
 * net.core.rmem_max), else SO_RCVBUF (capped at rmem_max), and answers what the kernel
 * granted (Linux reports twice what was asked, its bookkeeping included). Null where it
 * cannot be done: not Linux, or no FFI; the socket works either way, with the default buffer.
 */
async function setReceiveBuffer(fd: number, bytes: number): Promise<number | null> {
  if (process.platform !== "linux") return null;
  if (socketCalls === undefined) {
    try {
      const specifier = "bun:ffi";
      const ffi = (await import(specifier)) as BunFfi;
      const lib = ffi.dlopen(libc().path, {
        setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
        getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
      });
      const { setsockopt, getsockopt } = lib.symbols;
      socketCalls = setsockopt === undefined || getsockopt === undefined ? null : {
        setsockopt: (...args) => setsockopt(...args) as number,
        getsockopt: (...args) => getsockopt(...args) as number,
        ptr: (view) => ffi.ptr(view),
      };
    } catch {
      socketCalls = null;
    }
  }
  if (socketCalls === null) return null;
  const calls = socketCalls;
  const value = new Int32Array([bytes]);
  if (calls.setsockopt(fd, solSocket, soRcvbufForce, calls.ptr(value), 4) !== 0) calls.setsockopt(fd, solSocket, soRcvbuf, calls.ptr(value), 4);
  const length = new Uint32Array([4]);
  const granted = new Int32Array(1);
  return calls.getsockopt(fd, solSocket, soRcvbuf, calls.ptr(granted), calls.ptr(length)) === 0 ? (granted[0] as number) : null;
}

let bunCalls: LockCalls | null = null;

/** flock and errno through bun:ffi, loaded once, when the first lock is taken. */
async function bunLockCalls(): Promise<LockCalls> {
  if (bunCalls !== null) return bunCalls;
  const { path, errnoSymbol } = libc();
  // The specifier is a variable so that Deno's type-check does not try to resolve it.
  const specifier = "bun:ffi";
  let lib;
  let ffi: BunFfi;
  try {
    ffi = (await import(specifier)) as BunFfi;
    lib = ffi.dlopen(path, { flock: { args: ["i32", "i32"], returns: "i32" }, [errnoSymbol]: { args: [], returns: "ptr" } });
  } catch (error) {
    throw new RuntimeError(`Cannot lock files: cannot load ${path} through bun:ffi: ${errorText(error)}`);
  }
  const symbols = lib.symbols;
  bunCalls = {
    flock: (fd, operation) => symbols.flock?.(fd, operation) as number,
    errno: () => ffi.read.i32(symbols[errnoSymbol]?.(), 0),
  };
  return bunCalls;
}

const signals: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15, SIGSTOP: 19, SIGCONT: 18 };

export function signalNumber(name: string): number {
  return signals[name] ?? 0;
}
