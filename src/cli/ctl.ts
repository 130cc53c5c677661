// `physalia ctl`: one operation against the colony, printed as JSON.

import { MissingKeyError, PhysaliaClient, UnreachableError } from "../client/client.ts";
import { JsonInputError, integerFromJson, resultToJson, transactionFromJson, valueFromJson } from "../client/json.ts";
import type { Transaction } from "../core/transaction.ts";
import type { Value } from "../core/value.ts";
import { UsageError, parseCommandLine } from "./args.ts";
import { CliError, colorEndpoints, readKeys, readTopology } from "./colony.ts";
import { hasIncarnation, isNodeId, isPlainId, nodePart } from "../wire/ids.ts";
import { openClientLinks } from "./links.ts";
import { clientsKey, controlCellOf } from "../control/service.ts";
import type { Topology } from "../control/topology/types.ts";
import { utf8 } from "../core/value.ts";

export const ctlUsage = `usage: physalia ctl --topology FILE --keys FILE [--color C] [--timeout MS] [--eventual] COMMAND ...
--keys FILE is the client key file (client.json) for reads and writes, or the control key file
(control.json), which create, add-member and remove-member need
commands (VALUE is JSON: "text", 42, true, {"int": "123..."}, {"bytes": "<base64>"}; bare text is a string):
  create CELL [--client ID]       create a cell: with --client, the control plane places it near that
                                  topology client (physalia control must run); without, on the
                                  topology's rendezvous nodes
  attach CELL CLIENT              the cell now serves this topology client: the control plane moves it
  get CELL KEY...                 read keys (--eventual: from any replica, possibly stale)
  put CELL KEY VALUE              write a value
  delete CELL KEY                 delete a key
  increment CELL KEY [BY]         add BY (default 1) to an integer; a missing key counts as 0
  cas CELL KEY EXPECTED VALUE     write VALUE only if KEY holds EXPECTED (null: only if KEY is missing)
  scan CELL [START] [--end KEY] [--limit N]
  tx CELL JSON                    a whole transaction in the JSON form (see README)
  add-member CELL NODE | remove-member CELL NODE
  lease CELL NAME --holder H --ttl MS   take or renew a lease; "validForMs" is how long H may count on it
  release CELL NAME --holder H          give a lease back
output: the result as JSON on stdout; exit 0 when the cell answered, 1 when it could not be reached
or refused the operation, 2 for bad input`;

const flagSpecs = {
  topology: { type: "string" },
  keys: { type: "string" },
  color: { type: "string" },
  timeout: { type: "int", min: 100, max: 600_000 },
  eventual: { type: "bool" },
  end: { type: "string" },
  limit: { type: "int", min: 1, max: 256 },
  holder: { type: "string" },
  client: { type: "string" },
  ttl: { type: "int", min: 10, max: 24 * 60 * 60 * 1000 },
} as const;

function valueArg(text: string, where: string): Value {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text; // Bare text is a string.
  }
  try {
    return valueFromJson(json, where);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

function words(list: string[], count: [number, number], usage: string): string[] {
  if (list.length < count[0] || list.length > count[1]) throw new UsageError(`expected: ${usage}`);
  return list;
}

export async function ctlCommand(args: string[], print: (line: string) => void = console.log): Promise<number> {
  const { flags, positional } = parseCommandLine(args, flagSpecs);
  const [command, ...rest] = positional;
  if (command === undefined) throw new UsageError("missing command");
  const topology = await readTopology(flags.topology as string | undefined);
  const keysPath = flags.keys as string | undefined;
  const { kind, keys } = await readKeys(keysPath, ["client", "control"]);
  const color = (flags.color as string | undefined) ?? (topology.colors[0] as string);
  const nodes = colorEndpoints(topology, color);

  let tx: Transaction | null = null;
  let cell: string;
  const consistency = flags.eventual === true ? "eventual" : "consistent";
  let membership: { kind: "addMember" | "removeMember"; node: string } | null = null;
  let lease: { action: "acquire" | "release"; name: string; holder: string; ttlMs: number } | null = null;
  let attach: { row: string; rack: string } | null = null;
  switch (command) {
    case "create":
      [cell] = words(rest, [1, 1], "create CELL") as [string];
      break;
    case "get": {
      const [c, ...keys] = words(rest, [2, 64], "get CELL KEY...") as [string, ...string[]];
      cell = c;
      tx = { reads: keys, conditions: [], writes: [] };
      break;
    }
    case "put": {
      const [c, key, value] = words(rest, [3, 3], "put CELL KEY VALUE") as [string, string, string];
      cell = c;
      tx = { reads: [], conditions: [], writes: [{ key, op: "put", value: valueArg(value, "VALUE") }] };
      break;
    }
    case "delete": {
      const [c, key] = words(rest, [2, 2], "delete CELL KEY") as [string, string];
      cell = c;
      tx = { reads: [key], conditions: [], writes: [{ key, op: "delete" }] };
      break;
    }
    case "increment": {
      const [c, key, by] = words(rest, [2, 3], "increment CELL KEY [BY]") as [string, string, string | undefined];
      cell = c;
      let amount = 1n;
      try {
        if (by !== undefined) amount = integerFromJson(/^-?[0-9]+$/.test(by) ? by : JSON.parse(by), "BY");
      } catch (error) {
        throw new UsageError(error instanceof Error ? error.message : String(error));
      }
      tx = { reads: [], conditions: [], writes: [{ key, op: "increment", by: amount }] };
      break;
    }
    case "cas": {
      const [c, key, expected, value] = words(rest, [4, 4], "cas CELL KEY EXPECTED VALUE") as [string, string, string, string];
      cell = c;
      const condition = expected === "null" ? { key, test: "notExists" as const } : { key, test: "equals" as const, value: valueArg(expected, "EXPECTED") };
      tx = { reads: [key], conditions: [condition], writes: [{ key, op: "put", value: valueArg(value, "VALUE") }] };
      break;
    }
    case "scan": {
      const [c, start] = words(rest, [1, 2], "scan CELL [START]") as [string, string | undefined];
      cell = c;
      const range = { start: start ?? "", limit: (flags.limit as number | undefined) ?? 100 };
      tx = { reads: [], conditions: [], writes: [], scan: flags.end === undefined ? range : { ...range, end: flags.end as string } };
      break;
    }
    case "tx": {
      const [c, text] = words(rest, [2, 2], "tx CELL JSON") as [string, string];
      cell = c;
      try {
        tx = transactionFromJson(JSON.parse(text));
      } catch (error) {
        const reason = error instanceof JsonInputError || error instanceof SyntaxError ? error.message : String(error);
        throw new UsageError(`Cannot parse transaction: ${reason}`);
      }
      break;
    }
    case "add-member":
    case "remove-member": {
      const [c, node] = words(rest, [2, 2], `${command} CELL NODE`) as [string, string];
      cell = c;
      if (!isNodeId(node) || !nodes.has(nodePart(node))) throw new UsageError(`${node} is not a node of this colony and color`);
      membership = { kind: command === "add-member" ? "addMember" : "removeMember", node };
      break;
    }
    case "attach": {
      const [c, clientId] = words(rest, [2, 2], "attach CELL CLIENT") as [string, string];
      cell = c;
      const entry = topology.clients.find((x) => x.id === clientId);
      if (entry === undefined) throw new UsageError(`${clientId} is not a client of the topology`);
      attach = { row: entry.row, rack: entry.rack };
      break;
    }
    case "lease":
    case "release": {
      const [c, name] = words(rest, [2, 2], `${command} CELL NAME --holder H${command === "lease" ? " --ttl MS" : ""}`) as [string, string];
      cell = c;
      const holder = flags.holder as string | undefined;
      if (holder === undefined) throw new UsageError(`${command} needs --holder H`);
      if (!isPlainId(holder)) throw new UsageError(`--holder must be 1 to 64 of [A-Za-z0-9._-], got ${JSON.stringify(holder.slice(0, 80))}`);
      const ttlMs = flags.ttl as number | undefined;
      if (command === "lease" && ttlMs === undefined) throw new UsageError("lease needs --ttl MS");
      lease = { action: command === "lease" ? "acquire" : "release", name, holder, ttlMs: ttlMs ?? 10 };
      break;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
  if ((command === "create" || command === "attach" || membership !== null) && kind !== "control") {
    throw new CliError(`Cannot run ${command}: it needs the control key file, and ${keysPath} is a ${kind} key file`);
  }

  const transport = await openClientLinks(topology, color, keys);
  const client = new PhysaliaClient({
    id: `ctl-${process.pid}-${Math.floor(Math.random() * 1e9)}`,
    nodes, keys, transport, deadlineMs: (flags.timeout as number | undefined) ?? 10_000,
  });
  try {
    if (command === "create" && flags.client !== undefined) return await requestCreation(client, color, cell, flags.client as string, topology, print);
    if (command === "create") {
      const outcome = await client.create(cell);
      print(JSON.stringify({ ...outcome, cell }));
      return 0;
    }
    if (attach !== null) {
      const where = attach;
      const clients = { instance: where, primary: where, replica: where };
      const result = await client.transact(cell, { reads: [], conditions: [], writes: [{ key: clientsKey, op: "put", value: utf8(JSON.stringify(clients)) }] });
      print(JSON.stringify({ status: result.status, cell, clients, note: "the control plane moves the cell near its clients, one node at a time" }));
      return result.status === "committed" ? 0 : 1;
    }
    if (membership !== null) {
      // A node is named by its topology id; the cell knows it by identity (its id and its
      // data directory's incarnation). Add the identity it has now; remove the one the cell has.
      let identity = membership.node;
      if (membership.kind === "addMember") identity = await client.join(cell, nodePart(membership.node));
      else if (!hasIncarnation(identity)) {
        const known = await client.describe(cell);
        const member = known?.hosted.members.find((m) => nodePart(m) === identity);
        if (member === undefined) throw new CliError(`Cannot remove ${identity} from cell ${cell}: it is not a member${known === null ? " (no replica answered)" : ` (members: ${known.hosted.members.join(", ")})`}`);
        identity = member;
      }
      const result = await client.configure(cell, { kind: membership.kind, node: identity });
      print(JSON.stringify(result.status === "configured" ? result : { status: result.status, ...("reason" in result ? { reason: result.reason, detail: result.detail } : {}) }));
      return result.status === "configured" ? 0 : 1;
    }
    if (lease !== null) {
      const answer = lease.action === "acquire" ? await client.lease(cell, lease.name, lease.holder, lease.ttlMs) : await client.release(cell, lease.name, lease.holder);
      if (answer.status === "rejected") {
        print(JSON.stringify(answer));
        return 1;
      }
      const { status, name, granted, held, holder, remainingMs, validForMs } = answer;
      print(JSON.stringify({ status, cell, name, granted, held, holder, remainingMs, validForMs }));
      return 0;
    }
    const transaction = tx as Transaction;
    const result = await client.transact(cell, transaction, { consistency });
    print(JSON.stringify(resultToJson(transaction, result)));
    return result.status === "rejected" ? 1 : 0;
  } catch (error) {
    if (error instanceof UnreachableError || error instanceof MissingKeyError) throw new CliError(error.message);
    throw error;
  } finally {
    await client.end();
  }
}

/**
 * Asks the control plane to create a cell near a client: a request in the color's control
 * cell, which the active control plane serves; waits for its answer there.
 */
async function requestCreation(client: PhysaliaClient, color: string, cell: string, clientId: string, topology: Topology, print: (line: string) => void): Promise<number> {
  if (!topology.clients.some((c) => c.id === clientId)) throw new UsageError(`--client ${clientId} is not a client of the topology`);
  const control = controlCellOf(color);
  const write = await client.transact(control, { reads: [], conditions: [{ key: `done/${cell}`, test: "notExists" }], writes: [{ key: `create/${cell}`, op: "put", value: utf8(JSON.stringify({ client: clientId })) }] }).catch((error: unknown) => {
    throw new CliError(`Cannot reach the control cell ${control} (is physalia control running, and was the colony set up with it?): ${error instanceof Error ? error.message : String(error)}`);
  });
  if (write.status === "conditionFailed") {
    const previous = await client.transact(control, { reads: [`done/${cell}`], conditions: [], writes: [] });
    const value = previous.status === "committed" ? previous.reads[0] : null;
    print(value instanceof Uint8Array ? new TextDecoder().decode(value) : JSON.stringify({ status: "exists", cell }));
    return 0;
  }
  for (let waited = 0; waited < 30_000; waited += 200) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const answer = await client.transact(control, { reads: [`done/${cell}`], conditions: [], writes: [] });
    const value = answer.status === "committed" ? answer.reads[0] : null;
    if (value instanceof Uint8Array) {
      const text = new TextDecoder().decode(value);
      print(text);
      const status = (JSON.parse(text) as { status?: string }).status;
      return status === "created" || status === "exists" ? 0 : 1;
    }
  }
  throw new CliError(`The control plane did not answer within 30 s: is physalia control running for color ${color}? The request stays in ${control} and will be served when it runs.`);
}
