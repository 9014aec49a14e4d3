import test from "ava";
import { errnoOf, linkKind } from "./rtnetlink.js";

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
