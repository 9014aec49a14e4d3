import test from "ava";
import { attribute, cString, cStringAt, forEachAttribute, ipv4At, message, u32 } from "./wire.js";

test("an attribute is struct rtattr (len u16 without padding, type u16), then its payload padded with zeros to 4 bytes", (t) => {
  t.is(
    attribute(3, Buffer.from("ab\0")).toString("hex"),
    [
      "0700", // rta_len 7: header 4 + payload 3
      "0300", // rta_type 3
      "616200", // "ab\0"
      "00", // padding to 8
    ].join(""),
  );
  t.is(attribute(29, Buffer.from([8, 0, 0, 0])).toString("hex"), ["0800", "1d00", "08000000"].join(""), "an aligned payload gets no padding");
  t.is(attribute(2, Buffer.alloc(0)).toString("hex"), ["0400", "0200"].join(""), "an empty payload: the header alone");
  t.is(
    attribute(26, attribute(2, Buffer.from([1, 0, 0, 0]))).toString("hex"),
    [
      "0c00", // outer rta_len 12
      "1a00", // outer rta_type 26
      "0800", // inner rta_len 8
      "0200", // inner rta_type 2
      "01000000", // inner payload
    ].join(""),
    "nested: the inner attribute is the outer one's payload",
  );
});

test("payloads: u32 in little-endian host order, strings NUL-terminated", (t) => {
  t.is(u32(0x01020304).toString("hex"), "04030201");
  t.is(u32(0xffffffff).toString("hex"), "ffffffff");
  t.is(cString("x1").toString("hex"), "783100");
  t.is(cString("").toString("hex"), "00");
});

test("a message is its family header followed by its attributes", (t) => {
  const header = Buffer.from("0a0b", "hex");
  t.is(message(header).toString("hex"), "0a0b");
  t.is(message(header, [Buffer.from("0c", "hex"), Buffer.from("0d0e", "hex")]).toString("hex"), "0a0b0c0d0e");
});

test("attributes are visited in order with their payload bounds, skipping padding", (t) => {
  const data = Buffer.from(
    [
      "ffff", // 2 bytes before `offset`, not visited
      "0500", "0100", "61", "000000", // len 5, type 1, "a", padding
      "0800", "0200", "2a000000", // len 8, type 2, u32 42
      "0400", "0300", // len 4, type 3, empty
    ].join(""),
    "hex",
  );
  const seen: [number, number, number][] = [];
  forEachAttribute(data, 2, data.length, (type, start, end) => seen.push([type, start, end]));
  t.deepEqual(seen, [
    [1, 6, 7],
    [2, 14, 18],
    [3, 22, 22],
  ]);
});

test("the flag bits of an attribute's type (NLA_F_NESTED 0x8000, NLA_F_NET_BYTEORDER 0x4000) are not its type", (t) => {
  const data = Buffer.from(["0400", "1a80", "0400", "0140"].join(""), "hex");
  const types: number[] = [];
  forEachAttribute(data, 0, data.length, (type) => types.push(type));
  t.deepEqual(types, [26, 1]);
});

test("iteration stops at an attribute whose length is short or runs past the end", (t) => {
  const visit = (hex: string) => {
    const data = Buffer.from(hex, "hex");
    const types: number[] = [];
    forEachAttribute(data, 0, data.length, (type) => types.push(type));
    return types;
  };
  t.deepEqual(visit(["0400", "0100", "0300", "0200", "0400", "0300"].join("")), [1], "length 3 is shorter than the header");
  t.deepEqual(visit(["0400", "0100", "0c00", "0200", "00000000"].join("")), [1], "length 12 with 8 bytes left");
  t.deepEqual(visit(["0400", "0100", "08"].join("")), [1], "a header cut short");
  t.deepEqual(visit(""), []);
});

test("payload readers: a NUL-terminated string without its NULs, an IPv4 address only from 4 bytes", (t) => {
  const data = Buffer.from("72696b00000a630001", "hex");
  t.is(cStringAt(data, 0, 5), "rik");
  t.is(cStringAt(data, 0, 3), "rik", "no NUL at all");
  t.is(ipv4At(data, 5, 9), "10.99.0.1");
  t.is(ipv4At(data, 4, 9), undefined);
  t.is(ipv4At(data, 5, 8), undefined);
});
