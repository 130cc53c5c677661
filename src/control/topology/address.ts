// Node addresses: "host:port" where host is an IPv4 literal or a hostname, or "[ipv6]:port".
// The node process binds and sends to these, so they are checked strictly here, once.

export interface Address {
  /** The host without brackets: "127.0.0.1", "::1" or "node-7.example". */
  readonly host: string;
  readonly family: "ipv4" | "ipv6" | "hostname";
  readonly port: number;
}

const portMax = 65_535;
const hostnameBytesMax = 253;
const labelBytesMax = 63;

/** The parsed address, or a sentence saying what is wrong with it. */
export function parseAddress(text: string): Address | string {
  let host: string;
  let portText: string;
  let bracketed = false;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") return "must be \"[ipv6]:port\" when it starts with '['";
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    bracketed = true;
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return "must be \"host:port\"";
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) return "must put an IPv6 host in brackets, as \"[::1]:7101\"";
  }
  if (!/^[1-9][0-9]{0,4}$/.test(portText) || Number(portText) > portMax) return `port must be an integer from 1 to ${portMax}`;
  const port = Number(portText);
  if (bracketed) {
    return isIpv6(host) ? { host, family: "ipv6", port } : `host "${host}" is not an IPv6 address`;
  }
  if (host.length === 0) return "host is empty";
  if (/^[0-9.]+$/.test(host)) {
    return isIpv4(host) ? { host, family: "ipv4", port } : `host "${host}" is not an IPv4 address`;
  }
  return isHostname(host) ? { host, family: "hostname", port } : `host "${host}" is not a hostname`;
}

export function isIpv4(text: string): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  return parts.every((part) => /^(0|[1-9][0-9]{0,2})$/.test(part) && Number(part) <= 255);
}

export function isIpv6(text: string): boolean {
  if (text.length === 0 || text.length > 45) return false;
  let body = text;
  let groups = 8;
  // An embedded IPv4 address stands for the last two groups ("::ffff:10.0.0.1").
  const lastColon = body.lastIndexOf(":");
  if (lastColon < 0) return false;
  const last = body.slice(lastColon + 1);
  if (last.includes(".")) {
    if (!isIpv4(last)) return false;
    groups = 6;
    body = body.slice(0, lastColon);
    if (body.endsWith(":")) body = `${body}:`;
  }
  const halves = body.split("::");
  if (halves.length > 2) return false;
  const group = /^[0-9A-Fa-f]{1,4}$/;
  const split = (part: string): string[] | null => {
    if (part === "") return [];
    const items = part.split(":");
    return items.every((item) => group.test(item)) ? items : null;
  };
  const head = split(halves[0] ?? "");
  if (head === null) return false;
  if (halves.length === 1) return head.length === groups;
  const tail = split(halves[1] ?? "");
  return tail !== null && head.length + tail.length < groups;
}

export function isHostname(text: string): boolean {
  if (text.length === 0 || text.length > hostnameBytesMax) return false;
  const name = text.endsWith(".") ? text.slice(0, -1) : text;
  return name.split(".").every((label) => label.length >= 1 && label.length <= labelBytesMax && /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$/.test(label));
}

export function formatAddress(address: Address): string {
  return address.family === "ipv6" ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
