// `physalia ctl`: one operation against the colony, printed as JSON.
//
// What it prints and how it exits is one rule for every command (see main.ts): a result,
// a rejection included, is one JSON line on stdout; exit 0 when the cell did it (or said
// conditionFailed), 1 when the colony could not or would not (unreachable, no such cell,
// rejected keys, a refusal that depends on the cell's state), 2 for bad input, which is
// every usage error and every transaction that breaks a limit of the data model: ctl finds
// those before it sends anything, and prints the same typed rejection the cell would.

import { KeysRejectedError, MissingKeyError, NoSuchCellError, PhysaliaClient, SessionRefusedError, UnreachableError, OutcomeUnknownError } from "../client/client.ts";
import { JsonInputError, TransactionRejectedError, integerFromJson, parseJson, resultToJson, transactionFromJson, valueFromText } from "../client/json.ts";
import { leaseProblem } from "../core/cellstate.ts";
import { checkTransaction, isRejection, type Rejection, type Transaction } from "../core/transaction.ts";
import { decodeUtf8 } from "../core/bytes.ts";
import { utf8, type Value } from "../core/value.ts";
import { limits } from "../limits.ts";
import { UsageError, parseCommandLine, quote } from "./args.ts";
import { CliError, InputError, colorEndpoints, readKeys, readTopology } from "./colony.ts";
import { hasIncarnation, isNodeId, isPlainId, nodePart } from "../wire/ids.ts";
import { openClientLinks } from "./links.ts";
import { clientsKey, controlCellOf } from "../control/service.ts";
import type { Topology } from "../control/topology/types.ts";

export const ctlUsage = `usage: physalia ctl --topology FILE --keys FILE [--color C] [--timeout MS] COMMAND ...
--keys FILE is the client key file (client.json) for reads and writes, or the control key file
(control.json), which create, add-member and remove-member need
commands (VALUE is JSON: "text", 42, true, {"int": "123..."}, {"bytes": "<base64>"}; other bare text,
such as server-17, is a string; put -- before a value that starts with --):
  create CELL [--client ID]       create a cell: with --client, the control plane places it near that
                                  topology client (physalia control must run); without, on the
                                  topology's rendezvous nodes
  attach CELL CLIENT              the cell now serves this topology client: the control plane moves it
  where CELL                      where discovery says the cell is: members, incarnation, version, leader
                                  hint, and which node answered
  get CELL KEY... [--eventual]    read 1 to ${limits.keysPerTransactionMax} keys (--eventual: from any replica, possibly stale)
  put CELL KEY VALUE              write a value
  delete CELL KEY                 delete a key
  increment CELL KEY [BY]         add BY (default 1) to an integer; a missing key counts as 0
  cas CELL KEY EXPECTED VALUE     write VALUE only if KEY holds EXPECTED (null: only if KEY is missing)
  scan CELL [START] [--end KEY] [--limit N] [--eventual]
  tx CELL JSON [--eventual]       a whole transaction in the JSON form (see README); --eventual if it only reads
  add-member CELL NODE | remove-member CELL NODE
  lease CELL NAME --holder H --ttl MS   take or renew a lease; "validForMs" is how long H may count on it
  release CELL NAME --holder H          give a lease back
output: the result as one JSON line on stdout, a rejection included; exit 0 when the cell answered,
1 when the colony could not or would not (unreachable, no such cell, rejected keys, a refusal that
depends on the cell's state), 2 for bad input (usage, files, values past a limit of the data model)`;

const flagSpecs = {
  topology: { type: "string" },
  keys: { type: "string" },
  color: { type: "string" },
  timeout: { type: "int", min: 100, max: 600_000 },
  eventual: { type: "bool" },
  end: { type: "string" },
  limit: { type: "int", min: 1, max: limits.scanPageKeysMax },
  holder: { type: "string" },
  ttl: { type: "int", min: limits.leaseTtlMsMin, max: limits.leaseTtlMsMax },
  client: { type: "string" },
} as const;

type FlagName = keyof typeof flagSpecs;

/** Flags every command takes; the others belong to the commands listed here, and nowhere else. */
const commonFlags: readonly FlagName[] = ["topology", "keys", "color", "timeout"];
const commandFlags: Readonly<Record<string, readonly FlagName[]>> = {
  create: ["client"],
  attach: [],
  where: [],
  get: ["eventual"],
  put: [],
  delete: [],
  increment: [],
  cas: [],
  scan: ["end", "limit", "eventual"],
  tx: ["eventual"],
  "add-member": [],
  "remove-member": [],
  lease: ["holder", "ttl"],
  release: ["holder"],
};

function valueArg(text: string, where: string): Value {
  try {
    return valueFromText(text, where);
  } catch (error) {
    if (error instanceof JsonInputError) throw new UsageError(error.message);
    throw error;
  }
}

function words(list: string[], count: [number, number], usage: string): string[] {
  if (list.length < count[0] || list.length > count[1]) {
    const many = count[1] > count[0] + 1 && list.length > count[1] ? ` (at most ${count[1] - (count[0] - 1)} keys)` : "";
    throw new UsageError(`expected: ${usage}${many}`);
  }
  return list;
}

/** A cell name is a key of the colony: 1 to 256 bytes of well-formed UTF-8. */
function cellName(text: string): string {
  const bytes = utf8(text);
  if (bytes.length < 1 || bytes.length > limits.keyBytesMax || decodeUtf8(bytes) !== text) {
    throw new UsageError(`a cell name is 1 to ${limits.keyBytesMax} bytes of UTF-8, not ${quote(text)} (${bytes.length} bytes)`);
  }
  return text;
}

type Plan =
  | { readonly kind: "create"; readonly cell: string; readonly client: string | null }
  | { readonly kind: "attach"; readonly cell: string; readonly where: { readonly row: string; readonly rack: string } }
  | { readonly kind: "where"; readonly cell: string }
  | { readonly kind: "refused"; readonly cell: string; readonly rejection: Rejection }
  | { readonly kind: "tx"; readonly cell: string; readonly tx: Transaction }
  | { readonly kind: "member"; readonly cell: string; readonly change: "addMember" | "removeMember"; readonly node: string }
  | { readonly kind: "lease"; readonly cell: string; readonly action: "acquire" | "release"; readonly name: string; readonly holder: string; readonly ttlMs: number };

/** Reads the command and its words into a plan; every problem is a UsageError. */
function planOf(command: string, rest: string[], flags: Record<string, unknown>, isNode: (id: string) => boolean, topology: Topology): Plan {
  const topologyClient = (id: string, what: string) => {
    const entry = topology.clients.find((c) => c.id === id);
    if (entry === undefined) throw new UsageError(`${what} ${quote(id)} is not a client of the topology`);
    return entry;
  };
  switch (command) {
    case "create": {
      const [cell] = words(rest, [1, 1], "create CELL [--client ID]") as [string];
      const client = flags.client as string | undefined;
      if (client !== undefined) topologyClient(client, "--client");
      return { kind: "create", cell: cellName(cell), client: client ?? null };
    }
    case "attach": {
      const [cell, id] = words(rest, [2, 2], "attach CELL CLIENT") as [string, string];
      const entry = topologyClient(id, "CLIENT");
      return { kind: "attach", cell: cellName(cell), where: { row: entry.row, rack: entry.rack } };
    }
    case "where": {
      const [cell] = words(rest, [1, 1], "where CELL") as [string];
      return { kind: "where", cell: cellName(cell) };
    }
    case "get": {
      const [cell, ...keys] = words(rest, [2, 1 + limits.keysPerTransactionMax], "get CELL KEY...") as [string, ...string[]];
      return { kind: "tx", cell: cellName(cell), tx: { reads: keys, conditions: [], writes: [] } };
    }
    case "put": {
      const [cell, key, value] = words(rest, [3, 3], "put CELL KEY VALUE") as [string, string, string];
      return { kind: "tx", cell: cellName(cell), tx: { reads: [], conditions: [], writes: [{ key, op: "put", value: valueArg(value, "VALUE") }] } };
    }
    case "delete": {
      const [cell, key] = words(rest, [2, 2], "delete CELL KEY") as [string, string];
      return { kind: "tx", cell: cellName(cell), tx: { reads: [key], conditions: [], writes: [{ key, op: "delete" }] } };
    }
    case "increment": {
      const [cell, key, by] = words(rest, [2, 3], "increment CELL KEY [BY]") as [string, string, string | undefined];
      let amount = 1n;
      try {
        if (by !== undefined) amount = integerFromJson(/^-?[0-9]+$/.test(by) ? by : parseJson(by, "BY"), "BY");
      } catch (error) {
        if (error instanceof JsonInputError) throw new UsageError(error.message);
        throw error;
      }
      return { kind: "tx", cell: cellName(cell), tx: { reads: [], conditions: [], writes: [{ key, op: "increment", by: amount }] } };
    }
    case "cas": {
      const [cell, key, expected, value] = words(rest, [4, 4], "cas CELL KEY EXPECTED VALUE") as [string, string, string, string];
      const condition = expected === "null" ? { key, test: "notExists" as const } : { key, test: "equals" as const, value: valueArg(expected, "EXPECTED") };
      return { kind: "tx", cell: cellName(cell), tx: { reads: [key], conditions: [condition], writes: [{ key, op: "put", value: valueArg(value, "VALUE") }] } };
    }
    case "scan": {
      const [cell, start] = words(rest, [1, 2], "scan CELL [START]") as [string, string | undefined];
      const range = { start: start ?? "", limit: (flags.limit as number | undefined) ?? 100 };
      return { kind: "tx", cell: cellName(cell), tx: { reads: [], conditions: [], writes: [], scan: flags.end === undefined ? range : { ...range, end: flags.end as string } } };
    }
    case "tx": {
      const [cell, text] = words(rest, [2, 2], "tx CELL JSON") as [string, string];
      try {
        return { kind: "tx", cell: cellName(cell), tx: transactionFromJson(parseJson(text, "JSON")) };
      } catch (error) {
        // A transaction past a limit is a typed answer; what is not a transaction at all is a usage error.
        if (error instanceof TransactionRejectedError) return { kind: "refused", cell, rejection: error.rejection };
        if (error instanceof JsonInputError) throw new UsageError(`Cannot parse transaction: ${error.message}`);
        throw error;
      }
    }
    case "add-member":
    case "remove-member": {
      const [cell, node] = words(rest, [2, 2], `${command} CELL NODE`) as [string, string];
      if (!isNodeId(node) || !isNode(nodePart(node))) throw new UsageError(`${quote(node)} is not a node of this colony and color`);
      return { kind: "member", cell: cellName(cell), change: command === "add-member" ? "addMember" : "removeMember", node };
    }
    case "lease":
    case "release": {
      const [cell, name] = words(rest, [2, 2], `${command} CELL NAME --holder H${command === "lease" ? " --ttl MS" : ""}`) as [string, string];
      const holder = flags.holder as string | undefined;
      if (holder === undefined) throw new UsageError(`${command} needs --holder H`);
      if (!isPlainId(holder)) throw new UsageError(`--holder must be 1 to 64 of [A-Za-z0-9._-], not ${quote(holder)}`);
      const ttlMs = flags.ttl as number | undefined;
      if (command === "lease" && ttlMs === undefined) throw new UsageError("lease needs --ttl MS");
      return { kind: "lease", cell: cellName(cell), action: command === "lease" ? "acquire" : "release", name, holder, ttlMs: ttlMs ?? limits.leaseTtlMsMin };
    }
    default:
      throw new UsageError(`unknown command ${quote(command)}; the commands are ${Object.keys(commandFlags).join(", ")}`);
  }
}

/**
 * What the cell would refuse whatever its state: the transaction's stateless limits, a
 * lease's name and lifetime. Found here, before anything is sent, as the same typed answer.
 */
function inputRejection(plan: Plan): Rejection | null {
  if (plan.kind === "refused") return plan.rejection;
  if (plan.kind === "tx") {
    const checked = checkTransaction(plan.tx);
    return isRejection(checked) ? checked : null;
  }
  if (plan.kind === "lease") {
    const problem = leaseProblem(plan);
    return problem === null ? null : { status: "rejected", reason: "leaseInvalid", detail: problem };
  }
  return null;
}

export async function ctlCommand(args: string[], print: (line: string) => void = console.log): Promise<number> {
  const { flags, positional } = parseCommandLine(args, flagSpecs);
  const [command, ...rest] = positional;
  if (command === undefined) throw new UsageError("missing command");
  const allowed = Object.hasOwn(commandFlags, command) ? commandFlags[command] : undefined;
  if (allowed !== undefined) {
    for (const name of Object.keys(flags) as FlagName[]) {
      if (!commonFlags.includes(name) && !allowed.includes(name)) throw new UsageError(`flag --${name} does not apply to ${command}`);
    }
  }
  const topology = await readTopology(flags.topology as string | undefined);
  const color = (flags.color as string | undefined) ?? (topology.colors[0] as string);
  const nodes = colorEndpoints(topology, color);
  const plan = planOf(command, rest, flags, (id) => nodes.has(id), topology);
  if (plan.kind === "tx" && flags.eventual === true && plan.tx.writes.length > 0) throw new UsageError("--eventual is for reads only: this transaction writes");
  const refused = inputRejection(plan);
  if (refused !== null || plan.kind === "refused") {
    print(JSON.stringify(refused));
    return 2;
  }
  const keysPath = flags.keys as string | undefined;
  const { kind, keys } = await readKeys(keysPath, ["client", "control"]);
  if ((plan.kind === "create" || plan.kind === "attach" || plan.kind === "member") && kind !== "control") {
    throw new InputError(`Cannot run ${command}: it needs the control key file, and ${keysPath} is a ${kind} key file`);
  }

  const transport = await openClientLinks(topology, color, keys);
  const client = new PhysaliaClient({
    id: `ctl-${process.pid}-${Math.floor(Math.random() * 1e9)}`,
    nodes, keys, transport, deadlineMs: (flags.timeout as number | undefined) ?? 10_000,
  });
  try {
    return await run(client, plan, { eventual: flags.eventual === true, color }, print);
  } catch (error) {
    if (error instanceof KeysRejectedError) throw new CliError(`${error.message} (--keys ${keysPath})`);
    if (error instanceof UnreachableError || error instanceof NoSuchCellError) throw new CliError(error.message);
    if (error instanceof MissingKeyError) throw new InputError(error.message);
    if (error instanceof OutcomeUnknownError || error instanceof SessionRefusedError) throw new CliError(error.message);
    throw error;
  } finally {
    await client.end();
  }
}

async function run(client: PhysaliaClient, plan: Exclude<Plan, { kind: "refused" }>, context: { eventual: boolean; color: string }, print: (line: string) => void): Promise<number> {
  const { cell } = plan;
  const { eventual, color } = context;
  if (plan.kind === "create" && plan.client !== null) return await requestCreation(client, color, cell, plan.client, print);
  if (plan.kind === "attach") {
    const clients = { instance: plan.where, primary: plan.where, replica: plan.where };
    const result = await client.transact(cell, { reads: [], conditions: [], writes: [{ key: clientsKey, op: "put", value: utf8(JSON.stringify(clients)) }] });
    print(JSON.stringify({ status: result.status, cell, clients, note: "the control plane moves the cell near its clients, one node at a time" }));
    return result.status === "committed" ? 0 : 1;
  }
  if (plan.kind === "where") return await where(client, cell, print);
  if (plan.kind === "create") {
    const outcome = await client.create(cell);
    print(JSON.stringify({ ...outcome, cell }));
    return 0;
  }
  if (plan.kind === "member") {
    // A node is named by its topology id; the cell knows it by identity (its id and its
    // data directory's incarnation). Add the identity it has now; remove the one the cell has.
    let identity = plan.node;
    if (plan.change === "addMember") identity = await client.join(cell, nodePart(plan.node));
    else if (!hasIncarnation(identity)) {
      const known = await client.describe(cell);
      const member = known?.hosted.members.find((m) => nodePart(m) === identity);
      if (member === undefined) throw new CliError(`Cannot remove ${identity} from cell ${cell}: it is not a member${known === null ? " (no replica answered)" : ` (members: ${known.hosted.members.join(", ")})`}`);
      identity = member;
    }
    const result = await client.configure(cell, { kind: plan.change, node: identity });
    print(JSON.stringify(result.status === "configured" ? result : { status: result.status, ...("reason" in result ? { reason: result.reason, detail: result.detail } : {}) }));
    return result.status === "configured" ? 0 : 1;
  }
  if (plan.kind === "lease") {
    const answer = plan.action === "acquire" ? await client.lease(cell, plan.name, plan.holder, plan.ttlMs) : await client.release(cell, plan.name, plan.holder);
    if (answer.status === "rejected") {
      print(JSON.stringify(answer));
      return 1;
    }
    const { status, name, granted, held, holder, remainingMs, validForMs } = answer;
    print(JSON.stringify({ status, cell, name, granted, held, holder, remainingMs, validForMs }));
    return 0;
  }
  const result = await client.transact(cell, plan.tx, { consistency: eventual ? "eventual" : "consistent" });
  print(JSON.stringify(resultToJson(plan.tx, result)));
  return result.status === "rejected" ? 1 : 0;
}

/**
 * Asks the control plane to create a cell near a client: a request in the color's control
 * cell, which the active control plane serves; waits for its answer there.
 */
export async function requestCreation(client: PhysaliaClient, color: string, cell: string, clientId: string, print: (line: string) => void): Promise<number> {
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

/**
 * `ctl where`: discovery's entry for the cell, from the first node that knew it (a new ctl
 * has no cache, so the answer is always fresh), or, while the nodes that host a just-created
 * cell have no entry yet, what its furthest replica says.
 */
async function where(client: PhysaliaClient, cell: string, print: (line: string) => void): Promise<number> {
  const found = await client.where(cell);
  if (found !== null) {
    const { entry, source, node } = found;
    print(JSON.stringify({
      status: "found", cell, incarnation: entry.incarnation, epoch: entry.epoch, version: entry.version, members: entry.members,
      leader: entry.leader, ballot: entry.ballot, refreshedMs: entry.refreshedMs, source: { kind: source, node },
    }));
    return 0;
  }
  const known = await client.describe(cell);
  if (known === null) throw new CliError(`Cannot find cell ${cell}: no node answered where it is`);
  print(JSON.stringify({ status: "found", cell, incarnation: known.hosted.incarnation, epoch: null, version: null, members: known.hosted.members, leader: null, ballot: null, refreshedMs: null, source: { kind: "replica", node: known.node } }));
  return 0;
}
