// What physalia needs from the JavaScript runtime it runs on, and nothing more: datagram
// sockets, a small HTTP endpoint, child processes, sleeping, and how to start itself again.
// Bun and Deno each implement it (bun.ts, deno.ts); mod.ts picks one at start. Everything
// else in src/ is written against this interface or against node: modules that both
// runtimes provide, so no other file names a runtime.

/** A host and port, as the transports use them. */
export interface SocketAddress {
  readonly host: string;
  readonly port: number;
}

export interface DatagramOptions {
  readonly local: SocketAddress;
  /** Called for every datagram received, with its source. */
  readonly onData: (bytes: Uint8Array, from: SocketAddress) => void;
  /**
   * The kernel receive buffer to ask for, in bytes (SO_RCVBUF; as root past
   * net.core.rmem_max). Datagrams that arrive while the buffer is full are lost, so a node
   * that takes thousands of requests a second wants more than Linux's default 208 KiB.
   */
  readonly receiveBufferBytes?: number;
}

export interface DatagramSocket {
  /** The port actually bound (port 0 binds an ephemeral one). */
  readonly port: number;
  /**
   * Sends one datagram, best effort: errors (a full buffer, an ICMP "port unreachable" left
   * by an earlier send to a peer that is down) are swallowed, as the network would lose it.
   */
  send(bytes: Uint8Array, to: SocketAddress): void;
  close(): void;
  /** The receive buffer the kernel granted, in bytes (as SO_RCVBUF reports it); null where unknown. */
  readonly receiveBufferBytes: number | null;
}

export type HttpHandler = (request: Request) => Response | Promise<Response>;

export interface HttpServer {
  /** The port actually bound. */
  readonly port: number;
  stop(): void;
}

export interface SpawnOptions {
  /** Where the child's standard output goes; discarded when missing. */
  readonly stdoutPath?: string;
  /** Where the child's standard error goes; discarded when missing. */
  readonly stderrPath?: string;
}

export type SignalName = "SIGTERM" | "SIGKILL" | "SIGINT" | "SIGSTOP" | "SIGCONT";

export interface ChildProcess {
  readonly pid: number;
  /** Null while the child runs. */
  readonly exitCode: number | null;
  /** Resolves with the exit status once the child has exited (128 + n for a signal n). */
  readonly exited: Promise<number>;
  kill(signal?: SignalName): void;
}

/** An exclusive OS lock on a file (flock), held until released or until the process ends. */
export interface FileLock {
  /** The open file the lock is on (to write into it, e.g. the owner's pid). */
  readonly fd: number;
  release(): void;
}

export type RuntimeName = "bun" | "deno";

export interface Runtime {
  readonly name: RuntimeName;
  readonly version: string;
  /** Binds a UDP socket; rejects with the runtime's error when the address is taken or invalid. */
  openDatagram(options: DatagramOptions): Promise<DatagramSocket>;
  /** Serves HTTP on the address; rejects when it cannot listen. */
  serveHttp(local: SocketAddress, handler: HttpHandler): Promise<HttpServer>;
  /** Starts a child process; `argv[0]` is the executable. */
  spawn(argv: readonly string[], options?: SpawnOptions): ChildProcess;
  sleep(ms: number): Promise<void>;
  /**
   * Collects garbage now, where the runtime lets a program ask (Bun); elsewhere nothing. A
   * node calls it once after recovery, whose objects for a million cells are garbage then.
   */
  collectGarbage(): void;
  /**
   * Takes an exclusive OS lock on the file at `path` (created if missing) without waiting:
   * null when another process holds it. The kernel releases it when the process ends, however
   * it ends. Rejects with a RuntimeError where no lock can be had (no flock, no FFI permission).
   */
  lockFile(path: string): Promise<FileLock | null>;
  /** The argv prefix that starts this same program again: the binary, or the runtime and the entry file. */
  selfCommand(): string[];
  /** Whether this process is a compiled single executable rather than sources run by the runtime. */
  readonly compiled: boolean;
}

export class RuntimeError extends Error {
  override name = "RuntimeError";
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
