import test from "ava";
import { Ipv4Cidr } from "../model/ipv4-cidr.js";
import { isTapName } from "../model/instance-naming.js";
import { findPoolConflicts } from "./pool-conflicts.js";

const pool = Ipv4Cidr.parse("10.220.0.0/16");
const links = [
  { index: 1, name: "lo", kind: undefined, up: true, mtu: 1500, routeLocalnet: false, ipv6: undefined },
  { index: 2, name: "eth0", kind: undefined, up: true, mtu: 1500, routeLocalnet: false, ipv6: undefined },
  { index: 3, name: "rikabcdefghijkl", kind: "tun", up: true, mtu: 1500, routeLocalnet: false, ipv6: undefined },
];

test("a host outside the pool has no conflicts; the default route never counts", (t) => {
  t.deepEqual(
    findPoolConflicts(pool, {
      links,
      addresses: [{ index: 2, address: "192.0.2.10", prefixLength: 24 }],
      routes: [
        { destination: "0.0.0.0", prefixLength: 0, index: 2 },
        { destination: "192.0.2.0", prefixLength: 24, index: 2 },
      ],
    }, isTapName),
    [],
  );
});

test("our own TAPs carry pool addresses after a restart and are not conflicts", (t) => {
  t.deepEqual(
    findPoolConflicts(pool, {
      links,
      addresses: [{ index: 3, address: "10.220.0.1", prefixLength: 30 }],
      routes: [{ destination: "10.220.0.0", prefixLength: 30, index: 3 }],
    }, isTapName),
    [],
  );
});

test("an address or route that overlaps the pool is named", (t) => {
  t.deepEqual(
    findPoolConflicts(pool, {
      links,
      addresses: [{ index: 2, address: "10.220.9.1", prefixLength: 24 }],
      routes: [{ destination: "10.0.0.0", prefixLength: 8, index: 2 }],
    }, isTapName),
    ["address 10.220.9.1/24 on eth0", "route 10.0.0.0/8 via eth0"],
  );
});
