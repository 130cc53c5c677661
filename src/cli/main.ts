#!/usr/bin/env bun
// The one binary: physalia <command>. Unknown commands and flags exit 2 with a reason.

import { UsageError, flagWords, quote } from "./args.ts";
import { CliError, InputError } from "./colony.ts";
import { controlCommand, controlUsage } from "./control.ts";
import { ctlCommand, ctlUsage } from "./ctl.ts";
import { devCommand, devUsage } from "./dev.ts";
import { keysCommand, keysUsage } from "./keys.ts";
import { nodeCommand, nodeUsage } from "./node.ts";
import { rolloutCommand, rolloutUsage } from "./rollout.ts";
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
  rollout    restart a color's nodes one at a time, each only when its cells can spare it
  sim        run the deterministic simworld: one seed, or many
  topology   generate or check topology files
  keys       generate and rotate a colony's key files
  help       this text; physalia help <command> (or <command> --help) for a command's flags

flags:
  --version  print the version
  --help     print this text`;

interface Command {
  readonly run: (args: string[], print: (line: string) => void) => number | Promise<number>;
  readonly usage: string;
}

const commands: Record<string, Command> = {
  control: { run: controlCommand, usage: controlUsage },
  ctl: { run: ctlCommand, usage: ctlUsage },
  dev: { run: devCommand, usage: devUsage },
  keys: { run: keysCommand, usage: keysUsage },
  node: { run: nodeCommand, usage: nodeUsage },
  rollout: { run: rolloutCommand, usage: rolloutUsage },
  sim: { run: simCommand, usage: simUsage },
  topology: { run: topologyCommand, usage: topologyUsage },
};

/** Where the command line writes: results to `out`, reasons to `err`. */
export interface Io {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

const consoleIo: Io = { out: (line) => console.log(line), err: (line) => console.error(line) };

/**
 * Runs one command line and returns its exit status. The rule, for every command:
 *   0  done (for ctl: the cell answered, `conditionFailed` included)
 *   1  the colony could not or would not do it (unreachable, no such cell, rejected keys,
 *      a refusal that depends on the cell's state); for node and dev, a failure to run
 *   2  bad input: a usage error, a file that cannot be read or parsed, a value outside
 *      the data model (whether the client or the cell found it)
 * A result goes to stdout (ctl: one JSON line, a rejection included); anything else is one
 * line on stderr, `physalia <command>: <reason>`, and a usage error adds one line saying
 * where the usage is. Input quoted back is cut short.
 */
export async function main(argv: readonly string[], io: Io = consoleIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-v" || name === "version") {
    io.out(version);
    return 0;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    const topic = name === "help" ? rest[0] : undefined;
    if (topic === undefined) {
      io.out(usage);
      return 0;
    }
    const command = Object.hasOwn(commands, topic) ? commands[topic] : undefined;
    if (command === undefined || rest.length > 1) {
      io.err(`physalia help: ${command === undefined ? `no command ${quote(topic)}; the commands are ${Object.keys(commands).join(", ")}` : `unexpected argument ${quote(rest[1] as string)}`}`);
      return 2;
    }
    io.out(command.usage);
    return 0;
  }
  if (name === undefined) {
    io.err("physalia: no command given");
    io.err(usage);
    return 2;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command === undefined) {
    io.err(`physalia: unknown ${name.startsWith("-") ? "flag" : "command"} ${quote(name)}; the commands are ${Object.keys(commands).join(", ")} (physalia --help)`);
    return 2;
  }
  // --help asks for the usage only where a flag can stand: a value after `--` is a value.
  const flags = flagWords(rest);
  if (flags.includes("--help") || flags.includes("-h")) {
    io.out(command.usage);
    return 0;
  }
  try {
    return await command.run(rest, io.out);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`physalia ${name}: ${error.message}`);
      io.err(`(physalia ${name} --help shows the usage)`);
      return 2;
    }
    if (error instanceof InputError) {
      io.err(`physalia ${name}: ${error.message}`);
      return 2;
    }
    if (error instanceof CliError) {
      io.err(`physalia ${name}: ${error.message}`);
      return 1;
    }
    // A bug: still one line (and the stack on request), never a page of minified source.
    io.err(`physalia ${name}: internal error: ${error instanceof Error ? error.message : String(error)}`);
    if (process.env.PHYSALIA_DEBUG) io.err(error instanceof Error ? (error.stack ?? "") : "");
    else io.err("(a bug in physalia; PHYSALIA_DEBUG=1 prints the stack)");
    return 70;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
