// Checks a decoded JSON value against the topology format, field by field, and then across
// records (duplicates, unknown references, racks in two rows). Every error names the record
// and the field: `Cannot parse topology: node "n3": rack is empty`. Nothing here throws on
// bad input.

import { controlLimits } from "../limits.ts";
import { parseAddress } from "./address.ts";
import { nameProblem } from "./names.ts";
import { type ClientKind, type NodeTransport, type Topology, type TopologyClient, TopologyError, type TopologyNode } from "./types.ts";

const prefix = "Cannot parse topology";
const rootFields = new Set(["version", "name", "powerDomains", "colors", "nodes", "clients"]);
const nodeFields = new Set(["id", "address", "row", "rack", "power", "color", "capacity", "transport"]);
const clientFields = new Set(["id", "kind", "row", "rack", "power"]);

/** Raised inside this module only, and always caught before it leaves. */
class Invalid extends Error {}

function fail(subject: string, problem: string): never {
  throw new Invalid(subject === "" ? `${prefix}: ${problem}` : `${prefix}: ${subject}: ${problem}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkFields(subject: string, record: Record<string, unknown>, allowed: ReadonlySet<string>): void {
  for (const key of Object.keys(record)) {
    if (!allowed.has(key)) fail(subject, `unknown field "${key}"`);
  }
}

function nameField(subject: string, record: Record<string, unknown>, field: string): string {
  const value = record[field];
  if (value === undefined) fail(subject, `${field} is missing`);
  if (typeof value !== "string") fail(subject, `${field} must be a string`);
  const problem = nameProblem(value);
  if (problem !== null) fail(subject, `${field} ${problem}`);
  return value;
}

function nameList(field: string, value: unknown, max: number): string[] {
  if (value === undefined) fail("", `${field} is missing`);
  if (!Array.isArray(value)) fail("", `${field} must be an array of names`);
  if (value.length === 0) fail("", `${field} is empty`);
  if (value.length > max) fail("", `${field} has more than ${max} entries`);
  const seen = new Set<string>();
  value.forEach((item: unknown, index: number) => {
    if (typeof item !== "string") fail("", `${field}[${index}] must be a string`);
    const problem = nameProblem(item);
    if (problem !== null) fail("", `${field}[${index}] ${problem}`);
    if (seen.has(item)) fail("", `${field} lists "${item}" twice`);
    seen.add(item);
  });
  return value as string[];
}

function subjectOf(kind: string, record: unknown, index: number): string {
  if (isRecord(record) && typeof record["id"] === "string" && nameProblem(record["id"]) === null) return `${kind} "${record["id"]}"`;
  return `${kind} #${index + 1}`;
}

function readNode(raw: unknown, index: number, powers: ReadonlySet<string>, colors: ReadonlySet<string>): TopologyNode {
  const subject = subjectOf("node", raw, index);
  if (!isRecord(raw)) fail(subject, "must be an object");
  checkFields(subject, raw, nodeFields);
  const id = nameField(subject, raw, "id");
  const addressValue = raw["address"];
  if (addressValue === undefined) fail(subject, "address is missing");
  if (typeof addressValue !== "string") fail(subject, "address must be a string");
  const address = parseAddress(addressValue);
  if (typeof address === "string") fail(subject, `address ${address}`);
  const row = nameField(subject, raw, "row");
  const rack = nameField(subject, raw, "rack");
  const power = nameField(subject, raw, "power");
  if (!powers.has(power)) fail(subject, `power domain "${power}" is not in powerDomains`);
  const color = nameField(subject, raw, "color");
  if (!colors.has(color)) fail(subject, `color "${color}" is not in colors`);
  const capacity = raw["capacity"];
  if (capacity === undefined) fail(subject, "capacity is missing");
  if (typeof capacity !== "number" || !Number.isInteger(capacity) || capacity < 1 || capacity > controlLimits.nodeCapacityReplicasMax) {
    fail(subject, `capacity must be an integer from 1 to ${controlLimits.nodeCapacityReplicasMax}`);
  }
  const transport = raw["transport"];
  if (transport === undefined) return { id, address: addressValue, row, rack, power, color, capacity };
  if (transport !== "udp" && transport !== "datachannel") fail(subject, 'transport must be "udp" or "datachannel"');
  return { id, address: addressValue, row, rack, power, color, capacity, transport: transport satisfies NodeTransport };
}

function readClient(raw: unknown, index: number, powers: ReadonlySet<string>): TopologyClient {
  const subject = subjectOf("client", raw, index);
  if (!isRecord(raw)) fail(subject, "must be an object");
  checkFields(subject, raw, clientFields);
  const id = nameField(subject, raw, "id");
  const kind = raw["kind"];
  if (kind === undefined) fail(subject, "kind is missing");
  if (kind !== "instance" && kind !== "storage") fail(subject, 'kind must be "instance" or "storage"');
  const row = nameField(subject, raw, "row");
  const rack = nameField(subject, raw, "rack");
  if (raw["power"] === undefined) return { id, kind: kind satisfies ClientKind, row, rack };
  const power = nameField(subject, raw, "power");
  if (!powers.has(power)) fail(subject, `power domain "${power}" is not in powerDomains`);
  return { id, kind, row, rack, power };
}

function readTopology(value: unknown): Topology {
  if (!isRecord(value)) fail("", "the file must hold a JSON object");
  checkFields("", value, rootFields);
  if (value["version"] === undefined) fail("", "version is missing");
  if (value["version"] !== controlLimits.topologyVersion) {
    fail("", `version ${JSON.stringify(value["version"])} is not supported (expected ${controlLimits.topologyVersion})`);
  }
  const name = value["name"];
  if (name !== undefined && (typeof name !== "string" || name.length > 256)) fail("", "name must be a string of at most 256 characters");
  const powerDomains = nameList("powerDomains", value["powerDomains"], controlLimits.powerDomainsMax);
  const colors = nameList("colors", value["colors"], controlLimits.colorsMax);
  const rawNodes = value["nodes"];
  if (rawNodes === undefined) fail("", "nodes is missing");
  if (!Array.isArray(rawNodes)) fail("", "nodes must be an array");
  if (rawNodes.length === 0) fail("", "nodes is empty");
  if (rawNodes.length > controlLimits.nodesMax) fail("", `nodes has more than ${controlLimits.nodesMax} entries`);
  const rawClients = value["clients"] ?? [];
  if (!Array.isArray(rawClients)) fail("", "clients must be an array");
  if (rawClients.length > controlLimits.clientsMax) fail("", `clients has more than ${controlLimits.clientsMax} entries`);

  const powerSet = new Set(powerDomains);
  const colorSet = new Set(colors);
  const nodes = rawNodes.map((raw: unknown, index: number) => readNode(raw, index, powerSet, colorSet));
  const clients = rawClients.map((raw: unknown, index: number) => readClient(raw, index, powerSet));

  const ids = new Set<string>();
  const addresses = new Map<string, string>();
  const rackRow = new Map<string, string>();
  for (const node of nodes) {
    const subject = `node "${node.id}"`;
    if (ids.has(node.id)) fail(subject, "id is used by another node");
    ids.add(node.id);
    const other = addresses.get(node.address);
    if (other !== undefined) fail(subject, `address ${node.address} is also the address of node "${other}"`);
    addresses.set(node.address, node.id);
    const row = rackRow.get(node.rack);
    if (row !== undefined && row !== node.row) fail(subject, `rack "${node.rack}" is in row "${row}" elsewhere, not in row "${node.row}"`);
    rackRow.set(node.rack, node.row);
  }
  const rows = new Set(nodes.map((node) => node.row));
  const clientIds = new Set<string>();
  for (const client of clients) {
    const subject = `client "${client.id}"`;
    if (clientIds.has(client.id)) fail(subject, "id is used by another client");
    clientIds.add(client.id);
    if (!rows.has(client.row)) fail(subject, `row "${client.row}" has no nodes`);
    const row = rackRow.get(client.rack);
    if (row !== undefined && row !== client.row) fail(subject, `rack "${client.rack}" is in row "${row}", not in row "${client.row}"`);
    rackRow.set(client.rack, client.row);
  }
  const result: Topology = { version: 1, powerDomains, colors, nodes, clients };
  return typeof name === "string" ? { ...result, name } : result;
}

/** The topology this decoded JSON value describes, or an error naming the record and field. */
export function validateTopology(value: unknown): Topology | TopologyError {
  try {
    return readTopology(value);
  } catch (error: unknown) {
    if (error instanceof Invalid) return new TopologyError(error.message);
    throw error;
  }
}
