import test from "ava";
import { errnoOf, linkKind, routeLocalnetOf } from "./rtnetlink.js";

test("errno is read from netlink's message text", (t) => {
  t.is(errnoOf(new Error("Request rejected: ENODEV")), "ENODEV");
  t.is(errnoOf(new Error("something else")), undefined);
});

test("link kind is read from the raw IFLA_LINKINFO nest", (t) => {
  // IFLA_INFO_KIND "tun\0" (len 8), then IFLA_INFO_DATA (type 2, len 4, empty).
  const nest = Buffer.from([8, 0, 1, 0, 0x74, 0x75, 0x6e, 0, 4, 0, 2, 0]);
  t.is(linkKind(nest), "tun");
  t.is(linkKind(Buffer.from([4, 0, 2, 0])), undefined);
  t.is(linkKind(undefined), undefined);
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
