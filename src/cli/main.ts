#!/usr/bin/env bun
// The one binary: physalia <command>. Unknown commands and flags exit 2 with a reason.

import { UsageError } from "./args.ts";
import { CliError } from "./colony.ts";
import { controlCommand, controlUsage } from "./control.ts";
import { ctlCommand, ctlUsage } from "./ctl.ts";
import { devCommand, devUsage } from "./dev.ts";
import { keysCommand, keysUsage } from "./keys.ts";
import { nodeCommand, nodeUsage } from "./node.ts";
import { simCommand, simUsage } from "./sim.ts";
import { topologyCommand, topologyUsage } from "./topology.ts";
import { version } from "./version.ts";

const usage = `physalia ${version}: a transactional key-value store of many tiny Paxos cells

usage: physalia <command> [flags]

commands:
  dev        run a local colony with a sample workload (what npm start runs)
  node       run one node of a colony
  ctl        create a cell, read, write, and run transactions against a colony
  control    run the control plane of one color: placement, repair, cells that follow their clients
  sim        run the deterministic simworld: one seed, or many
  topology   generate or check topology files
  keys       generate and rotate a colony's key files
  help       this text; physalia <command> --help for a command's flags

flags:
  --version  print the version
  --help     print this text`;

interface Command {
  readonly run: (args: string[]) => number | Promise<number>;
  readonly usage: string;
}

const commands: Record<string, Command> = {
  control: { run: controlCommand, usage: controlUsage },
  ctl: { run: ctlCommand, usage: ctlUsage },
  dev: { run: devCommand, usage: devUsage },
  keys: { run: keysCommand, usage: keysUsage },
  node: { run: nodeCommand, usage: nodeUsage },
  sim: { run: simCommand, usage: simUsage },
  topology: { run: topologyCommand, usage: topologyUsage },
};

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-v" || name === "version") {
    console.log(version);
    return 0;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    console.log(usage);
    return 0;
  }
  if (name === undefined) {
    console.error("physalia: no command given");
    console.error(usage);
    return 2;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command === undefined) {
    console.error(`physalia: unknown ${name.startsWith("-") ? "flag" : "command"} ${JSON.stringify(name)}`);
    console.error(usage);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`physalia ${name}: ${error.message}`);
      console.error(command.usage);
      return 2;
    }
    if (error instanceof CliError) {
      console.error(`physalia ${name}: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
