// The colony dashboard in a real headless Chromium (Debian's chromium, driven by
// playwright-core): against a real `physalia dev` colony, the page loads, draws every node
// by row and rack with its health, lists the cells with their leaders, and shows a node
// killed from the game-day console as down. With SCREENSHOT=1 it also writes
// docs/dashboard.png, the picture in the README.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { type BrowserContext, type Page, chromium } from "playwright-core";

const root = join(import.meta.dir, "../..");
const main = join(root, "src/cli/main.ts");
const basePort = 40_000 + Math.floor(Math.random() * 10_000);
const dashboard = `http://127.0.0.1:${basePort + 1000}/`;

let dev: Subprocess<"ignore", "pipe", "pipe"> | null = null;
let context: BrowserContext | null = null;
let profile = "";
let output = "";

/** Waits until dev has printed `text`, reading its output as it comes. */
async function waitForOutput(text: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!output.includes(text)) {
    if (performance.now() > deadline) throw new Error(`dev did not print ${JSON.stringify(text)}; it printed:\n${output}`);
    if (dev?.exitCode !== null) throw new Error(`dev exited with ${dev?.exitCode}:\n${output}`);
    await Bun.sleep(100);
  }
}

async function physalia(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const child = Bun.spawn([process.execPath, main, ...args], { stdout: "pipe", stderr: "pipe", cwd: root });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, out, err };
}

beforeAll(async () => {
  dev = Bun.spawn([process.execPath, main, "dev", "--base-port", String(basePort), "--duration", "600"], { stdin: "ignore", stdout: "pipe", stderr: "pipe", cwd: root });
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of dev.stdout) output += decoder.decode(chunk);
  })();
  await waitForOutput("The colony is running", 90_000);
  profile = await mkdtemp(join(tmpdir(), "physalia-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}, 120_000);

afterAll(async () => {
  await context?.close();
  if (dev !== null) {
    dev.kill("SIGTERM");
    await dev.exited;
  }
  if (profile !== "") await rm(profile, { recursive: true, force: true });
});

async function health(page: Page, node: string): Promise<string | null> {
  return page.getAttribute(`.node[data-node="${node}"]`, "data-health");
}

describe("the colony dashboard", () => {
  test("shows every node by row and rack, the cells and their leaders, and a killed node as down", async () => {
    expect(output).toContain(`Dashboard: ${dashboard}`);
    const page = await (context as BrowserContext).newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(String(error)));
    await page.goto(dashboard);
    await page.waitForFunction(`document.querySelectorAll('.node[data-health="up"]').length === 9`, undefined, { timeout: 20_000 });
    const ids = await page.$$eval(".node", (nodes) => nodes.map((n) => n.getAttribute("data-node")));
    expect(ids.sort()).toEqual(["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"]);
    // The local topology: one row, three racks of three nodes, each rack its own power domain.
    expect(await page.$$eval('.row[data-row="r1"] .rack', (racks) => racks.map((r) => r.querySelectorAll(".node").length))).toEqual([3, 3, 3]);
    expect(await page.textContent('.rack[data-rack="r1-k2"] .node[data-node="n5"]')).toContain("power p2");
    // The cells the workload created, each with a leader and seven replicas.
    // The three of the workload and the control plane's own cell (dev runs a control plane).
    await page.waitForFunction(`document.querySelectorAll("#cells tr[data-cell]").length === 4`, undefined, { timeout: 10_000 });
    for (const cell of ["volume-1", "volume-2", "volume-3", "physalia.control.blue"]) {
      const row = await page.$$eval(`#cells tr[data-cell="${cell}"] td`, (tds) => tds.map((td) => td.textContent ?? ""));
      expect(row[1]).toMatch(/^n\d$/);
      expect((row[3] ?? "").match(/n\d/g)?.length).toBe(7);
    }
    // Live figures: the history fills as the nodes sample (every 2 s).
    await page.waitForFunction(`[...document.querySelectorAll(".node .figure b")].some((b) => b.textContent !== "-")`, undefined, { timeout: 15_000 });

    const killed = await physalia("dev", "kill", "n3", "--base-port", String(basePort));
    expect(killed.code).toBe(0);
    await page.waitForFunction(`document.querySelector('.node[data-node="n3"]')?.getAttribute("data-health") === "down"`, undefined, { timeout: 15_000 });
    expect(await health(page, "n4")).toBe("up");
    expect(await page.textContent("#summary")).toContain("8 of 9 nodes up");
    // dev reported nothing as a death: the kill was its own.
    expect(output).not.toContain("node n3 died");
    // A new leader takes over the cells n3 led, under dev's light load.
    await page.waitForFunction(`[...document.querySelectorAll("#cells tr[data-cell] td:nth-child(2)")].every((td) => td.textContent !== "n3")`, undefined, { timeout: 20_000 });
    if (process.env.SCREENSHOT) {
      await Bun.sleep(8_000);
      await page.screenshot({ path: join(root, "docs/dashboard.png"), fullPage: true });
    }
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);
});
