import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { formatAddress, isHostname, isIpv4, isIpv6, parseAddress } from "../../../src/control/topology/address.ts";

describe("node addresses", () => {
  test("an IPv4 literal with a port parses into host, family and port", () => {
    expect(parseAddress("127.0.0.1:7101")).toEqual({ host: "127.0.0.1", family: "ipv4", port: 7101 });
  });

  test("a bracketed IPv6 literal parses, including the embedded-IPv4 form", () => {
    expect(parseAddress("[::1]:7101")).toEqual({ host: "::1", family: "ipv6", port: 7101 });
    expect(parseAddress("[::ffff:10.0.0.1]:1")).toEqual({ host: "::ffff:10.0.0.1", family: "ipv6", port: 1 });
    expect(parseAddress("[2001:db8:0:0:0:0:0:1]:65535")).toEqual({ host: "2001:db8:0:0:0:0:0:1", family: "ipv6", port: 65535 });
  });

  test("a hostname with a port parses", () => {
    expect(parseAddress("node-7.rack-3.example:9000")).toEqual({ host: "node-7.rack-3.example", family: "hostname", port: 9000 });
  });

  test.each([
    ["127.0.0.1", 'must be "host:port"'],
    ["127.0.0.1:0", "port must be an integer from 1 to 65535"],
    ["127.0.0.1:65536", "port must be an integer from 1 to 65535"],
    ["127.0.0.1:07101", "port must be an integer from 1 to 65535"],
    ["127.0.0.1:", "port must be an integer from 1 to 65535"],
    [":7101", "host is empty"],
    ["256.0.0.1:7101", 'host "256.0.0.1" is not an IPv4 address'],
    ["10.0.1:7101", 'host "10.0.1" is not an IPv4 address'],
    ["::1:7101", 'must put an IPv6 host in brackets, as "[::1]:7101"'],
    ["[::1]7101", "must be \"[ipv6]:port\" when it starts with '['"],
    ["[1:::2]:7101", 'host "1:::2" is not an IPv6 address'],
    ["[10.0.0.1]:7101", 'host "10.0.0.1" is not an IPv6 address'],
    ["-node.example:7101", 'host "-node.example" is not a hostname'],
    ["node..example:7101", 'host "node..example" is not a hostname'],
    ["node_1:7101", 'host "node_1" is not a hostname'],
    [`${"a".repeat(64)}.example:7101`, `host "${"a".repeat(64)}.example" is not a hostname`],
  ])("%p is refused: %s", (text, problem) => {
    expect(parseAddress(text)).toBe(problem);
  });

  test("every IPv4 and IPv6 literal that fast-check makes is accepted and formats back unchanged", () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 1, max: 65535 }), (host, port) => {
        const text = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
        const address = parseAddress(text);
        expect(typeof address).toBe("object");
        if (typeof address === "object") expect(formatAddress(address)).toBe(text);
      }),
    );
  });

  test("every domain name that fast-check makes is a hostname", () => {
    fc.assert(fc.property(fc.domain(), (name) => isHostname(name)));
  });

  test("an IPv4 literal with an octet over 255 or a leading zero is not IPv4", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 999 }), { minLength: 4, maxLength: 4 }), (octets) => {
        expect(isIpv4(octets.join("."))).toBe(octets.every((o) => o <= 255));
      }),
    );
    expect(isIpv4("01.2.3.4")).toBe(false);
  });

  test("an IPv6 literal with nine groups or two '::' is not IPv6", () => {
    expect(isIpv6("1:2:3:4:5:6:7:8:9")).toBe(false);
    expect(isIpv6("1::2::3")).toBe(false);
    expect(isIpv6("1:2:3:4:5:6:7:8")).toBe(true);
    expect(isIpv6("::")).toBe(true);
  });
});
