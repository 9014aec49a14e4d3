import test from "ava";
import { formatIpv4, Ipv4Cidr, parseIpv4, prefixToMask } from "./ipv4-cidr.js";
import { NetworkError } from "./network-error.js";

test("parses and formats dotted quads", (t) => {
  t.is(parseIpv4("10.220.0.1"), 0x0adc0001);
  t.is(formatIpv4(0x0adc0001), "10.220.0.1");
  t.is(formatIpv4(parseIpv4("255.255.255.255")!), "255.255.255.255");
  for (const bad of ["10.220.0", "10.220.0.256", "01.2.3.4", "a.b.c.d", "1.2.3.4.5", ""]) t.is(parseIpv4(bad), undefined, bad);
});

test("masks from prefix lengths", (t) => {
  t.is(prefixToMask(30), "255.255.255.252");
  t.is(prefixToMask(16), "255.255.0.0");
  t.is(prefixToMask(0), "0.0.0.0");
  t.is(prefixToMask(32), "255.255.255.255");
});

test("CIDR parse, containment and overlap", (t) => {
  const pool = Ipv4Cidr.parse("10.220.0.0/16");
  t.is(pool.size, 65536);
  t.is(pool.toString(), "10.220.0.0/16");
  t.true(pool.contains(parseIpv4("10.220.255.255")!));
  t.false(pool.contains(parseIpv4("10.221.0.0")!));
  t.true(pool.overlaps(Ipv4Cidr.parse("10.0.0.0/8")));
  t.true(pool.overlaps(Ipv4Cidr.parse("10.220.7.0/24")));
  t.false(pool.overlaps(Ipv4Cidr.parse("10.221.0.0/16")));
});

test("CIDR parse rejects host bits and garbage with a hint", (t) => {
  const error = t.throws(() => Ipv4Cidr.parse("10.220.0.1/16"), { instanceOf: NetworkError });
  t.regex(error.message, /did you mean 10\.220\.0\.0\/16/);
  for (const bad of ["10.220.0.0", "10.220.0.0/33", "10.220.0.0/x", "/16", "10.220.0.0/16/1"]) {
    t.throws(() => Ipv4Cidr.parse(bad), { instanceOf: NetworkError }, bad);
  }
});
