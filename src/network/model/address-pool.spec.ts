import test from "ava";
import { AddressPool } from "./address-pool.js";
import { Ipv4Cidr } from "./ipv4-cidr.js";
import { NetworkError } from "./network-error.js";

test("hands out /30s lowest first: host is the first usable address, guest the second", (t) => {
  const pool = new AddressPool(Ipv4Cidr.parse("10.220.0.0/28"));
  t.is(pool.capacity, 4);
  t.deepEqual(pool.allocate("a"), {
    slot: 0,
    subnet: "10.220.0.0/30",
    hostIp: "10.220.0.1",
    guestIp: "10.220.0.2",
    prefixLength: 30,
    mask: "255.255.255.252",
  });
  t.is(pool.allocate("b").hostIp, "10.220.0.5");
  t.is(pool.size, 2);
});

test("a released /30 is reused before higher ones", (t) => {
  const pool = new AddressPool(Ipv4Cidr.parse("10.220.0.0/28"));
  for (const id of ["a", "b", "c"]) pool.allocate(id);
  pool.release(1);
  t.is(pool.allocate("d").slot, 1);
  t.is(pool.allocate("e").slot, 3);
  t.is(pool.ownerOf(1), "d");
});

test("exhaustion is RESOURCE_EXHAUSTED and changes nothing", (t) => {
  const pool = new AddressPool(Ipv4Cidr.parse("10.220.0.0/29"));
  pool.allocate("a");
  pool.allocate("b");
  const error = t.throws(() => pool.allocate("c"), { instanceOf: NetworkError });
  t.is(error.code, "resource-exhausted");
  t.regex(error.message, /10\.220\.0\.0\/29 is exhausted/);
  t.is(pool.size, 2);
  pool.release(0);
  t.is(pool.allocate("c").slot, 0);
});

test("reserve restores a given slot and refuses another owner's", (t) => {
  const pool = new AddressPool(Ipv4Cidr.parse("10.220.0.0/24"));
  t.is(pool.reserve(5, "a").guestIp, "10.220.0.22");
  t.is(pool.reserve(5, "a").slot, 5, "idempotent for the same owner");
  t.is(pool.size, 1);
  t.is(t.throws(() => pool.reserve(5, "b"), { instanceOf: NetworkError }).code, "already-exists");
  t.is(t.throws(() => pool.reserve(64, "b"), { instanceOf: NetworkError }).code, "invalid-argument");
});

test("the default-sized pool holds at least 4096 instances", (t) => {
  const pool = new AddressPool(Ipv4Cidr.parse("10.220.0.0/16"));
  t.true(pool.capacity >= 4096);
  for (let i = 0; i < 5000; i++) pool.allocate(`i${i}`);
  t.is(pool.describe(4999).guestIp, "10.220.78.30");
});

test("a pool smaller than a /30 is refused", (t) => {
  t.throws(() => new AddressPool(Ipv4Cidr.parse("10.220.0.0/31")), { instanceOf: NetworkError });
});
