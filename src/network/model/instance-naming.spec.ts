import test from "ava";
import { validateInstanceId } from "./instance-id.js";
import { guestMacFor, isTapName, tapNameFor } from "./instance-naming.js";
import { NetworkError } from "./network-error.js";

test("TAP names are deterministic, 15 characters, and recognisable as ours", (t) => {
  const name = tapNameFor("fn-1");
  t.is(name, tapNameFor("fn-1"));
  t.is(name.length, 15);
  t.regex(name, /^rik[a-z2-7]{12}$/);
  t.true(isTapName(name));
  t.false(isTapName("eth0"));
  t.false(isTapName("rik"));
});

test("TAP names do not collide across 100k instance ids", (t) => {
  const names = new Set<string>();
  for (let i = 0; i < 100_000; i++) names.add(tapNameFor(`instance-${i}`));
  t.is(names.size, 100_000);
});

test("guest MACs are stable, unicast and locally administered", (t) => {
  const mac = guestMacFor("fn-1");
  t.is(mac, guestMacFor("fn-1"));
  t.not(mac, guestMacFor("fn-2"));
  t.regex(mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  const first = parseInt(mac.slice(0, 2), 16);
  t.is(first & 0x01, 0, "unicast");
  t.is(first & 0x02, 0x02, "locally administered");
});

test("instance ids: safe alphabet and bounded length", (t) => {
  for (const good of ["fn-1", "a", "A.b_c-9", "x".repeat(128)]) t.is(validateInstanceId(good), good);
  for (const bad of ["", "-lead", ".lead", "has space", "semi;colon", 'quote"', "x".repeat(129), "ünï", "a\nb"]) {
    const error = t.throws(() => validateInstanceId(bad), { instanceOf: NetworkError }, bad);
    t.is(error.code, "invalid-argument");
    t.regex(error.message, /invalid instance_id/);
  }
});
