// The runtime module on whichever runtime runs the test: `bun test` checks the Bun
// implementation and `deno test` (npm run test:deno) the Deno one, from this same file.

import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openNodeDatagram } from "../../src/runtime/dgram.ts";
import { type DatagramSocket, runtime } from "../../src/runtime/mod.ts";

const loopback = { host: "127.0.0.1", port: 0 };

async function roundTrip(open: typeof runtime.openDatagram): Promise<void> {
  const got: { bytes: number[]; port: number }[] = [];
  let wake: () => void = () => {};
  const b: DatagramSocket = await open({ local: loopback, onData: (bytes, from) => b.send(bytes.slice().reverse(), from) });
  const a = await open({ local: loopback, onData: (bytes, from) => { got.push({ bytes: [...bytes], port: from.port }); wake(); } });
  try {
    expect(a.port).toBeGreaterThan(0);
    await new Promise<void>((resolve) => {
      wake = resolve;
      a.send(new Uint8Array([1, 2, 3]), { host: "127.0.0.1", port: b.port });
    });
    expect(got).toEqual([{ bytes: [3, 2, 1], port: b.port }]);
    // A port that is taken is refused.
    await expect(open({ local: { host: "127.0.0.1", port: a.port }, onData: () => {} })).rejects.toBeInstanceOf(Error);
  } finally {
    a.close();
    b.close();
  }
}

function evalCommand(code: string): string[] {
  return runtime.name === "deno" ? [process.execPath, "eval", code] : [process.execPath, "-e", code];
}

describe(`the ${runtime.name} runtime`, () => {
  test("its datagram sockets exchange datagrams and report their source", () => roundTrip((o) => runtime.openDatagram(o)));

  test("node:dgram sockets do the same (Deno's fallback without --unstable-net)", () => roundTrip(openNodeDatagram));

  test("a socket asked for a large receive buffer gets it where the runtime can size it, and reports what it got", async () => {
    const asked = 4 * 1024 * 1024;
    const sized = await runtime.openDatagram({ local: loopback, onData: () => {}, receiveBufferBytes: asked });
    const plain = await runtime.openDatagram({ local: loopback, onData: () => {} });
    const viaDgram = await openNodeDatagram({ local: loopback, onData: () => {}, receiveBufferBytes: asked });
    try {
      expect(plain.receiveBufferBytes).toBeNull();
      // Linux reports twice what it granted (its bookkeeping included); as root past rmem_max.
      const linuxRoot = process.platform === "linux" && process.getuid?.() === 0;
      if (linuxRoot) expect(viaDgram.receiveBufferBytes).toBeGreaterThanOrEqual(asked);
      // Bun sizes its own sockets through bun:ffi; Deno's datagram API cannot, and says so with null.
      if (runtime.name === "bun" && linuxRoot) expect(sized.receiveBufferBytes).toBeGreaterThanOrEqual(asked);
      if (sized.receiveBufferBytes !== null) expect(sized.receiveBufferBytes).toBeGreaterThan(0);
    } finally {
      sized.close();
      plain.close();
      viaDgram.close();
    }
  });

  test("a datagram to a closed port is lost without an error, and the socket goes on", async () => {
    const dead = await runtime.openDatagram({ local: loopback, onData: () => {} });
    const deadPort = dead.port;
    dead.close();
    let got = 0;
    let wake: () => void = () => {};
    const b = await runtime.openDatagram({ local: loopback, onData: (bytes, from) => b.send(bytes, from) });
    const a = await runtime.openDatagram({ local: loopback, onData: () => { got++; wake(); } });
    try {
      for (let i = 0; i < 3; i++) a.send(new Uint8Array([i]), { host: "127.0.0.1", port: deadPort });
      await runtime.sleep(20);
      await new Promise<void>((resolve) => {
        wake = resolve;
        a.send(new Uint8Array([9]), { host: "127.0.0.1", port: b.port });
      });
      expect(got).toBe(1);
    } finally {
      a.close();
      b.close();
    }
  });

  test("its HTTP server answers, and a taken port is refused", async () => {
    const server = await runtime.serveHttp(loopback, (request) => new Response(`you asked for ${new URL(request.url).pathname}`));
    try {
      const response = await fetch(`http://127.0.0.1:${server.port}/status`);
      expect(await response.text()).toBe("you asked for /status");
      await expect(runtime.serveHttp({ host: "127.0.0.1", port: server.port }, () => new Response(""))).rejects.toBeInstanceOf(Error);
    } finally {
      server.stop();
    }
  });

  test("a child's output goes to the files given, and its exit status comes back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "physalia-runtime-"));
    try {
      const child = runtime.spawn(evalCommand("console.log('out'); console.error('err'); process.exit(3)"), { stdoutPath: join(dir, "out"), stderrPath: join(dir, "err") });
      expect(child.pid).toBeGreaterThan(0);
      expect(await child.exited).toBe(3);
      expect(child.exitCode).toBe(3);
      await runtime.sleep(50); // The copy of a Deno child's output may finish just after it exits.
      expect(readFileSync(join(dir, "out"), "utf8")).toBe("out\n");
      expect(readFileSync(join(dir, "err"), "utf8")).toBe("err\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a child killed by a signal reports 128 + the signal", async () => {
    const child = runtime.spawn(evalCommand("setTimeout(() => {}, 60000)"));
    await runtime.sleep(200);
    expect(child.exitCode).toBeNull();
    child.kill("SIGKILL");
    expect(await child.exited).toBe(128 + 9);
  });

  test("it knows how to start itself again, and sleeps", async () => {
    const command = runtime.selfCommand();
    expect(command[0]).toBe(process.execPath);
    expect(runtime.compiled).toBe(false);
    const started = performance.now();
    await runtime.sleep(30);
    expect(performance.now() - started).toBeGreaterThan(25);
  });
});
