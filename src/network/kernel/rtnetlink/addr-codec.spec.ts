/**
 * Requests as bytes, written from the kernel's layouts rather than with the codec's helpers:
 * struct ifaddrmsg { u8 family; u8 prefixlen; u8 flags; u8 scope; u32 index; }, struct rtattr
 * { u16 len; u16 type; } padded to 4, in host (little-endian) order. IFA_ADDRESS 1, IFA_LOCAL
 * 2 (<linux/if_addr.h>); RTM_NEWADDR 20, RTM_DELADDR 21, RTM_GETADDR 22 (<linux/rtnetlink.h>);
 * NLM_F_REPLACE 0x100, NLM_F_CREATE 0x400, NLM_F_DUMP 0x300 (<linux/netlink.h>); AF_INET 2.
 */
import test from "ava";
import { NetworkError } from "../../model/network-error.js";
import { addrDelFirstRequest, addrDelRequest, addrDump, addrReplaceRequest, parseAddress } from "./addr-codec.js";
import type { Request } from "./wire.js";

/** A request as the test writes it: the payload in hex. */
const shown = ({ type, flags, payload }: Request) => ({ type, flags, payload: payload.toString("hex") });

/** 10.99.0.1/30 on link 42, as ip(8) sends it for a link without a peer. */
const ADDRESS_ON_42 = [
  "02", // ifa_family AF_INET
  "1e", // ifa_prefixlen 30
  "00", // ifa_flags
  "00", // ifa_scope RT_SCOPE_UNIVERSE
  "2a000000", // ifa_index 42
  "0800", "0200", "0a630001", // IFA_LOCAL len 8: 10.99.0.1, network order
  "0800", "0100", "0a630001", // IFA_ADDRESS len 8: the same, no peer
];

test("RTM_NEWADDR with NLM_F_CREATE | NLM_F_REPLACE adds the address, or replaces it; RTM_DELADDR names it the same way", (t) => {
  t.deepEqual(shown(addrReplaceRequest(42, "10.99.0.1", 30)), { type: 20, flags: 0x500, payload: ADDRESS_ON_42.join("") });
  t.deepEqual(shown(addrDelRequest(42, "10.99.0.1", 30)), { type: 21, flags: 0, payload: ADDRESS_ON_42.join("") });
});

test("RTM_DELADDR naming only the link, for its first IPv4 address: no prefix length, no IFA_LOCAL, no IFA_ADDRESS", (t) => {
  t.deepEqual(shown(addrDelFirstRequest(42)), {
    type: 21, // RTM_DELADDR
    flags: 0,
    payload: ["02", "00", "00", "00", "2a000000"].join(""), // AF_INET, prefixlen 0, flags, scope, ifa_index 42
  });
});

test("the index is a u32 and the prefix length a byte", (t) => {
  t.is(
    addrDelRequest(0x01020304, "255.0.0.1", 0).payload.toString("hex"),
    [
      "02", "00", "00", "00", // AF_INET, prefixlen 0, flags, scope
      "04030201", // ifa_index 0x01020304, little-endian
      "0800", "0200", "ff000001", // IFA_LOCAL 255.0.0.1
      "0800", "0100", "ff000001", // IFA_ADDRESS 255.0.0.1
    ].join(""),
  );
});

test("anything but a dotted IPv4 address is refused as invalid-argument", (t) => {
  for (const address of ["10.99.0", "10.99.0.256", "::1", "", "10.99.0.1/30"]) {
    for (const encode of [addrReplaceRequest, addrDelRequest]) {
      const error = t.throws(() => encode(42, address, 30), { instanceOf: NetworkError });
      t.is(error?.code, "invalid-argument", address);
      t.is(error?.message, `"${address}" is not an IPv4 address`);
    }
  }
});

test("the address dump is RTM_GETADDR with NLM_F_DUMP of an AF_INET ifaddrmsg, answered by RTM_NEWADDR", (t) => {
  const dump = addrDump();
  t.deepEqual(shown(dump.request), { type: 22, flags: 0x300, payload: ["02", "00", "00", "00", "00000000"].join("") }); // family AF_INET, the rest 0
  t.is(dump.answer, 20);
  t.is(dump.parse, parseAddress);
});

test("an address is IFA_LOCAL, else IFA_ADDRESS (on a point-to-point link IFA_ADDRESS is the peer's)", (t) => {
  const header = ["02", "1e", "80", "00", "07000000"]; // AF_INET /30, IFA_F_PERMANENT, index 7
  const parse = (...attributes: string[]) => parseAddress(Buffer.from([...header, ...attributes].join(""), "hex"));
  t.deepEqual(parse("0800", "0100", "0a000002", "0800", "0200", "0a000001"), { index: 7, address: "10.0.0.1", prefixLength: 30 });
  t.deepEqual(parse("0800", "0100", "0a000002"), { index: 7, address: "10.0.0.2", prefixLength: 30 });
  t.is(parse("1400", "0100", "fe800000000000000000000000000001"), undefined, "16 bytes: no IPv4 address");
  t.is(parse(), undefined);
  t.is(parseAddress(Buffer.alloc(7)), undefined, "shorter than ifaddrmsg");
});
