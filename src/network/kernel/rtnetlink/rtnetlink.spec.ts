import test from "ava";
import { rejected, scriptedNetlink } from "../../../../test/helpers/scripted-netlink.js";
import { KernelError } from "../kernel-error.js";
import { errnoOf, ipv6ConfOf, linkInfoOf, routeLocalnetOf, Rtnetlink } from "./rtnetlink.js";

test("errno is read from netlink's message text", (t) => {
  t.is(errnoOf(new Error("Request rejected: ENODEV")), "ENODEV");
  t.is(errnoOf(new Error("something else")), undefined);
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

test("a kernel error on a link given by index names the link when the caller gave its name", async (t) => {
  const rtnetlink = Rtnetlink.open(() =>
    scriptedNetlink(() => {
      throw rejected("ENODEV");
    }),
  );
  t.teardown(() => rtnetlink.close());
  const failure = (call: Promise<void>) => t.throwsAsync(call, { instanceOf: KernelError });
  t.is((await failure(rtnetlink.addrReplace(42, "10.220.0.1", 30, { name: "rikaaaaaaaaaaaa" }))).message, "adding address 10.220.0.1/30 to link rikaaaaaaaaaaaa (index 42) failed: ENODEV (no such device)");
  t.is((await failure(rtnetlink.addrDel(42, "10.220.0.1", 30, { name: "rikaaaaaaaaaaaa" }))).message, "removing address 10.220.0.1/30 from link rikaaaaaaaaaaaa (index 42) failed: ENODEV (no such device)");
  t.is((await failure(rtnetlink.linkSetUp(42, { mtu: 1500, name: "rikaaaaaaaaaaaa" }))).message, "setting link rikaaaaaaaaaaaa (index 42) up failed: ENODEV (no such device)");
  t.is(
    (await failure(rtnetlink.linkSetUp(42, { rename: "rikaaaaaaaaaaaa", name: "rik-spare-7" }))).message,
    "renaming link rik-spare-7 (index 42) to rikaaaaaaaaaaaa and setting it up failed: ENODEV (no such device)",
  );
  t.is((await failure(rtnetlink.linkSetUp("rikaaaaaaaaaaaa"))).message, "setting link rikaaaaaaaaaaaa up failed: ENODEV (no such device)", "by name, the name");
  t.is((await failure(rtnetlink.addrReplace(42, "10.220.0.1", 30))).message, "adding address 10.220.0.1/30 to link 42 failed: ENODEV (no such device)", "the index, when that is all the caller has");
});
