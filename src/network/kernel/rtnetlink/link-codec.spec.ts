/**
 * Requests as bytes, written from the kernel's layouts rather than with the codec's helpers:
 * struct ifinfomsg { u8 family; u8 pad; u16 type; s32 index; u32 flags; u32 change; },
 * struct rtattr { u16 len (header included, padding not); u16 type; } with its payload
 * padded to 4, in host (little-endian) order. IFLA_IFNAME 3, IFLA_MTU 4, IFLA_AF_SPEC 26,
 * IFLA_GROUP 27, IFLA_EXT_MASK 29, IFLA_CARRIER 33 (<linux/if_link.h>); RTM_NEWLINK 16, RTM_DELLINK 17,
 * RTM_GETLINK 18, RTM_SETLINK 19 (<linux/rtnetlink.h>); IFF_UP 1 (<linux/if.h>).
 */
import test from "ava";
import {
  ipv6ConfOf,
  linkDelGroupRequest,
  linkDelRequest,
  linkDump,
  linkGetByIndexRequest,
  linkGetRequest,
  linkIndexOf,
  linkInfoOf,
  linkRenameRequest,
  linkSetDownRequest,
  linkSetGroupRequest,
  linkSetUpRequest,
  parseLink,
  routeLocalnetOf,
} from "./link-codec.js";
import type { Request } from "./wire.js";

/** A request as the test writes it: the payload in hex. */
const shown = ({ type, flags, payload }: Request) => ({ type, flags, payload: payload.toString("hex") });

/** struct ifinfomsg of AF_UNSPEC, type 0, index 0 (the link is named by IFLA_IFNAME), no flags. */
const NO_INDEX_NO_FLAGS = [
  "00", // ifi_family AF_UNSPEC
  "00", // pad
  "0000", // ifi_type
  "00000000", // ifi_index 0
  "00000000", // ifi_flags
  "00000000", // ifi_change
];

test("RTM_GETLINK by name asks for the link without its statistics", (t) => {
  t.deepEqual(shown(linkGetRequest("rikt-a")), {
    type: 18, // RTM_GETLINK
    flags: 0,
    payload: [
      ...NO_INDEX_NO_FLAGS,
      "0b00", "0300", "72696b742d6100", "00", // IFLA_IFNAME len 11 "rikt-a\0", padding
      "0800", "1d00", "08000000", // IFLA_EXT_MASK len 8: RTEXT_FILTER_SKIP_STATS (1 << 3)
    ].join(""),
  });
});

test("RTM_SETLINK up by name, with the MTU and route_localnet as a devconf attribute in IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF", (t) => {
  t.deepEqual(shown(linkSetUpRequest({ name: "rikt-a" }, { mtu: 1400, routeLocalnet: true })), {
    type: 19, // RTM_SETLINK
    flags: 0,
    payload: [
      "00", "00", "0000", // family AF_UNSPEC, pad, type
      "00000000", // ifi_index 0: by name
      "01000000", // ifi_flags IFF_UP
      "01000000", // ifi_change IFF_UP: only that flag changes
      "0b00", "0300", "72696b742d6100", "00", // IFLA_IFNAME len 11 "rikt-a\0", padding
      "0800", "0400", "78050000", // IFLA_MTU len 8: 1400
      "1400", "1a00", // IFLA_AF_SPEC len 20
      "1000", "0200", // AF_INET len 16
      "0c00", "0100", // IFLA_INET_CONF len 12
      "0800", "1a00", "01000000", // IPV4_DEVCONF_ROUTE_LOCALNET (26) len 8: 1
    ].join(""),
  });
});

test("RTM_SETLINK up by index: a rename is IFLA_IFNAME, route_localnet off is 0", (t) => {
  t.deepEqual(shown(linkSetUpRequest({ index: 3, rename: "rikt-b2" }, { mtu: 1300, routeLocalnet: false })), {
    type: 19, // RTM_SETLINK
    flags: 0,
    payload: [
      "00", "00", "0000", // family, pad, type
      "03000000", // ifi_index 3
      "01000000", // ifi_flags IFF_UP
      "01000000", // ifi_change IFF_UP
      "0c00", "0300", "72696b742d623200", // IFLA_IFNAME len 12 "rikt-b2\0": the new name, no padding needed
      "0800", "0400", "14050000", // IFLA_MTU 1300
      "1400", "1a00", "1000", "0200", "0c00", "0100", // IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF
      "0800", "1a00", "00000000", // IPV4_DEVCONF_ROUTE_LOCALNET: 0
    ].join(""),
  });
});

test("RTM_SETLINK up by index with nothing else is struct ifinfomsg alone", (t) => {
  t.deepEqual(shown(linkSetUpRequest({ index: 0x01020304 })), {
    type: 19, // RTM_SETLINK
    flags: 0,
    payload: [
      "00", "00", "0000", // family, pad, type
      "04030201", // ifi_index 0x01020304, little-endian
      "01000000", // ifi_flags IFF_UP
      "01000000", // ifi_change IFF_UP
    ].join(""),
  });
});

test("RTM_SETLINK of a link's group names the link and carries IFLA_GROUP", (t) => {
  t.deepEqual(shown(linkSetGroupRequest("x1", 9)), {
    type: 19, // RTM_SETLINK
    flags: 0,
    payload: [
      ...NO_INDEX_NO_FLAGS, // no IFF_UP: the link stays as it is
      "0700", "0300", "783100", "00", // IFLA_IFNAME len 7 "x1\0", padding
      "0800", "1b00", "09000000", // IFLA_GROUP len 8: 9
    ].join(""),
  });
});

test("RTM_DELLINK by name, or of a whole group with neither index nor name", (t) => {
  t.deepEqual(shown(linkDelRequest("rikt-a")), {
    type: 17, // RTM_DELLINK
    flags: 0,
    payload: [
      ...NO_INDEX_NO_FLAGS,
      "0b00", "0300", "72696b742d6100", "00", // IFLA_IFNAME len 11 "rikt-a\0", padded to 4 like every attribute
    ].join(""),
  });
  t.deepEqual(shown(linkDelGroupRequest(0x1234)), {
    type: 17, // RTM_DELLINK
    flags: 0,
    payload: [...NO_INDEX_NO_FLAGS, "0800", "1b00", "34120000"].join(""), // IFLA_GROUP len 8: 0x1234
  });
});

test("the link dump is RTM_GETLINK with NLM_F_DUMP (NLM_F_ROOT 0x100 | NLM_F_MATCH 0x200) of an empty ifinfomsg, answered by RTM_NEWLINK", (t) => {
  const dump = linkDump();
  t.deepEqual(shown(dump.request), { type: 18, flags: 0x300, payload: NO_INDEX_NO_FLAGS.join("") });
  t.is(dump.answer, 16);
  t.is(dump.parse, parseLink);
});

test("RTM_GETLINK by index names no link: the index is in ifinfomsg", (t) => {
  t.deepEqual(shown(linkGetByIndexRequest(42)), {
    type: 18, // RTM_GETLINK
    flags: 0,
    payload: [
      "00", "00", "0000", // family AF_UNSPEC, pad, type
      "2a000000", // ifi_index 42
      "00000000", "00000000", // ifi_flags, ifi_change
      "0800", "1d00", "08000000", // IFLA_EXT_MASK len 8: RTEXT_FILTER_SKIP_STATS
    ].join(""),
  });
});

test("RTM_SETLINK down clears IFF_UP: the flag in ifi_change, not in ifi_flags; a rename in the same message is IFLA_IFNAME", (t) => {
  const down = [
    "00", "00", "0000", // family, pad, type
    "07000000", // ifi_index 7
    "00000000", // ifi_flags: IFF_UP clear
    "01000000", // ifi_change IFF_UP: only that flag changes
  ];
  t.deepEqual(shown(linkSetDownRequest(7)), { type: 19, flags: 0, payload: down.join("") });
  t.deepEqual(shown(linkSetDownRequest(7, "rik-doom-7")), {
    type: 19,
    flags: 0,
    payload: [...down, "0f00", "0300", "72696b2d646f6f6d2d3700", "00"].join(""), // IFLA_IFNAME len 15 "rik-doom-7\0", padding
  });
});

test("RTM_SETLINK rename by index changes no flag: ifi_change 0, the new name in IFLA_IFNAME", (t) => {
  t.deepEqual(shown(linkRenameRequest(0x1f4, "rik-spare-12")), {
    type: 19, // RTM_SETLINK
    flags: 0,
    payload: [
      "00", "00", "0000",
      "f4010000", // ifi_index 500
      "00000000", "00000000", // ifi_flags, ifi_change: no flag touched
      "1100", "0300", "72696b2d73706172652d313200", "000000", // IFLA_IFNAME len 17 "rik-spare-12\0", padding to 20
    ].join(""),
  });
});

test("IFLA_CARRIER (u8) is read as the link's carrier, up or down", (t) => {
  const link = (carrier: number, flags: string) =>
    Buffer.from(["00", "00", "0100", "09000000", flags, "00000000", "0500", "2100", carrier === 0 ? "00" : "01", "000000"].join(""), "hex");
  t.like(parseLink(link(1, "00100000")), { index: 9, up: false, carrier: true }, "down, but a descriptor holds it");
  t.like(parseLink(link(0, "01100000")), { index: 9, up: true, carrier: false });
});

test("the index is read from the first RTM_NEWLINK of the answer that holds struct ifinfomsg", (t) => {
  const link = (index: string) => Buffer.from(["00", "00", "0000", index, "00000000", "00000000"].join(""), "hex");
  t.is(linkIndexOf([{ type: 16, data: link("2a000000") }]), 42);
  t.is(linkIndexOf([{ type: 17, data: link("01000000") }, { type: 16, data: Buffer.alloc(15) }, { type: 16, data: link("07000000") }]), 7);
  t.is(linkIndexOf([]), undefined, "a bare ACK");
});

test("a link: index, flags, IFLA_IFNAME, IFLA_MTU, the kind in IFLA_LINKINFO and the per-family conf in IFLA_AF_SPEC", (t) => {
  const data = Buffer.from(
    [
      "00", "00", "0100", // family, pad, type ARPHRD_ETHER
      "2a000000", // ifi_index 42
      "43100100", // ifi_flags IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_MULTICAST | IFF_LOWER_UP
      "00000000", // ifi_change
      "0800", "0300", "74617000", // IFLA_IFNAME "tap\0"
      "0800", "0400", "dc050000", // IFLA_MTU 1500
      "1800", "1200", // IFLA_LINKINFO len 24
      "0800", "0100", "74756e00", // IFLA_INFO_KIND "tun\0"
      "0c00", "0280", // IFLA_INFO_DATA len 12, NLA_F_NESTED
      "0800", "0100", "e8030000", // IFLA_TUN_OWNER 1000
      "f000", "1a00", // IFLA_AF_SPEC len 240
      "7000", "0200", // AF_INET len 112
      "6c00", "0100", // IFLA_INET_CONF len 108: u32 per devconf from 1
      "00000000".repeat(25), "01000000", // devconf 26 route_localnet 1
      "7c00", "0a00", // AF_INET6 len 124
      "7000", "0200", // IFLA_INET6_CONF len 112: s32 per DEVCONF_* from 0
      "00000000".repeat(3), "00000000", "00000000".repeat(22), "01000000", // accept_ra (3) 0, disable_ipv6 (26) 1
      "0500", "0800", "01", "000000", // IFLA_INET6_ADDR_GEN_MODE u8 1 (none), padding
    ].join(""),
    "hex",
  );
  t.deepEqual(parseLink(data), {
    index: 42,
    name: "tap",
    kind: "tun",
    tunOwner: 1000,
    hardwareType: 1,
    up: true,
    carrier: undefined,
    mtu: 1500,
    routeLocalnet: true,
    ipv6: { disabled: true, acceptRa: 0, addrGenMode: 1 },
  });
});

test("a link without attributes is down, nameless and kindless; shorter than ifinfomsg is no link", (t) => {
  t.deepEqual(parseLink(Buffer.from(["00", "00", "0000", "05000000", "02000000", "00000000"].join(""), "hex")), {
    index: 5,
    name: "",
    kind: undefined,
    hardwareType: 0,
    up: false,
    carrier: undefined,
    mtu: 0,
    routeLocalnet: undefined,
    ipv6: undefined,
  });
  t.is(parseLink(Buffer.alloc(15)), undefined);
});

test("link kind is read from the raw IFLA_LINKINFO nest", (t) => {
  // IFLA_INFO_KIND "tun\0" (len 8), then IFLA_INFO_DATA (type 2, len 4, empty).
  const nest = Buffer.from([8, 0, 1, 0, 0x74, 0x75, 0x6e, 0, 4, 0, 2, 0]);
  t.deepEqual(linkInfoOf(nest), { kind: "tun" });
  t.deepEqual(linkInfoOf(Buffer.from([4, 0, 2, 0])), { kind: undefined });
  t.deepEqual(linkInfoOf(undefined), { kind: undefined });
});

test("a tun device's owner and group are read from IFLA_INFO_DATA, and only when present", (t) => {
  const u32 = (type: number, value: number) => {
    const attribute = Buffer.alloc(8);
    attribute.writeUInt16LE(8, 0);
    attribute.writeUInt16LE(type, 2);
    attribute.writeUInt32LE(value, 4);
    return attribute;
  };
  const data = (...attributes: Buffer[]) => {
    const body = Buffer.concat(attributes);
    const header = Buffer.alloc(4);
    header.writeUInt16LE(4 + body.length, 0);
    header.writeUInt16LE(2, 2); // IFLA_INFO_DATA
    return Buffer.concat([header, body]);
  };
  const kind = (name: string) => {
    const text = Buffer.from(`${name}\0`);
    const attribute = Buffer.alloc(4 + ((text.length + 3) & ~3));
    attribute.writeUInt16LE(4 + text.length, 0);
    attribute.writeUInt16LE(1, 2); // IFLA_INFO_KIND
    text.copy(attribute, 4);
    return attribute;
  };
  // IFLA_TUN_OWNER 1, IFLA_TUN_GROUP 2, IFLA_TUN_TYPE 3 (u8, padded)
  const tunType = Buffer.from([5, 0, 3, 0, 2, 0, 0, 0]);
  t.deepEqual(linkInfoOf(Buffer.concat([kind("tun"), data(u32(1, 65534), u32(2, 123), tunType)])), { kind: "tun", tunOwner: 65534, tunGroup: 123 });
  t.deepEqual(linkInfoOf(Buffer.concat([kind("tun"), data(tunType)])), { kind: "tun" }, "neither set");
  t.deepEqual(linkInfoOf(Buffer.concat([kind("veth"), data(u32(1, 7))])), { kind: "veth" }, "only a tun device has an owner");
});

test("route_localnet is read from IFLA_INET_CONF in the AF_INET part of IFLA_AF_SPEC (devconf 26)", (t) => {
  const inetConf = (values: number[]) => {
    const nest = Buffer.alloc(4 + 4 * values.length);
    nest.writeUInt16LE(nest.length, 0);
    nest.writeUInt16LE(1, 2);
    values.forEach((value, index) => nest.writeUInt32LE(value, 4 + 4 * index));
    return nest;
  };
  const conf = new Array<number>(33).fill(0);
  t.false(routeLocalnetOf(inetConf(conf)));
  conf[25] = 1;
  t.true(routeLocalnetOf(inetConf(conf)));
  t.is(routeLocalnetOf(inetConf(conf.slice(0, 20))), undefined, "a kernel too old to have it");
  t.is(routeLocalnetOf(undefined), undefined);
});

test("disable_ipv6, accept_ra and addr_gen_mode are read from the AF_INET6 part of IFLA_AF_SPEC", (t) => {
  // IFLA_INET6_CONF (type 2): s32 per DEVCONF_*, from 0; IFLA_INET6_ADDR_GEN_MODE (type 8): u8.
  const conf = (values: number[]) => {
    const nest = Buffer.alloc(4 + 4 * values.length);
    nest.writeUInt16LE(nest.length, 0);
    nest.writeUInt16LE(2, 2);
    values.forEach((value, index) => nest.writeInt32LE(value, 4 + 4 * index));
    return nest;
  };
  const mode = (value: number) => Buffer.from([5, 0, 8, 0, value, 0, 0, 0]);
  const values = new Array<number>(40).fill(0);
  values[3] = 1; // accept_ra
  t.deepEqual(ipv6ConfOf(Buffer.concat([conf(values), mode(0)])), { disabled: false, acceptRa: 1, addrGenMode: 0 });
  values[3] = 0;
  values[26] = 1; // disable_ipv6
  t.deepEqual(ipv6ConfOf(Buffer.concat([mode(1), conf(values)])), { disabled: true, acceptRa: 0, addrGenMode: 1 });
  t.is(ipv6ConfOf(Buffer.concat([conf(values.slice(0, 20)), mode(1)])), undefined, "a conf array too short to hold disable_ipv6");
  t.is(ipv6ConfOf(conf(values)), undefined, "no addr_gen_mode");
  t.is(ipv6ConfOf(undefined), undefined);
});
