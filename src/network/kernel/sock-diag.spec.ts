import test from "ava";
import { listenRequest, parseInetDiagMessage } from "./sock-diag.js";

/** struct inet_diag_msg as the kernel sends it: family, state, timer, retrans, then the socket id. */
function message(family: number, port: number, src: number[]): Buffer {
  const data = Buffer.alloc(72);
  data.writeUInt8(family, 0);
  data.writeUInt8(10, 1);
  data.writeUInt16BE(port, 4);
  Buffer.from(src).copy(data, 8);
  return data;
}

test("the request is a struct inet_diag_req for sockets in LISTEN, with no family and no socket id filter", (t) => {
  const request = listenRequest();
  t.is(request.length, 60);
  t.is(request.readUInt32LE(52), 1 << 10, "idiag_states: TCPF_LISTEN only");
  t.true(request.subarray(0, 52).every((b) => b === 0), "no family, no extensions, no socket id filter");
  t.is(request.readUInt32LE(56), 0, "idiag_dbs");
});

test("IPv4 listeners: port in network order, address from the first 4 bytes", (t) => {
  t.deepEqual(parseInetDiagMessage(message(2, 8080, [127, 0, 0, 1])), { protocol: "tcp", address: "127.0.0.1", port: 8080 });
  t.deepEqual(parseInetDiagMessage(message(2, 22, [0, 0, 0, 0])), { protocol: "tcp", address: "0.0.0.0", port: 22 });
});

test("IPv6 listeners: the wildcard and v4-mapped addresses read as IPv4, others as ipv6", (t) => {
  t.deepEqual(parseInetDiagMessage(message(10, 80, new Array(16).fill(0))), { protocol: "tcp", address: "0.0.0.0", port: 80 });
  const mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 10];
  t.deepEqual(parseInetDiagMessage(message(10, 81, mapped)), { protocol: "tcp", address: "192.0.2.10", port: 81 });
  t.deepEqual(parseInetDiagMessage(message(10, 82, [0x20, 0x01, 0x0d, 0xb8, ...new Array(12).fill(1)])), { protocol: "tcp", address: "ipv6", port: 82 });
});

test("a truncated message or another family is skipped", (t) => {
  t.is(parseInetDiagMessage(Buffer.alloc(10)), undefined);
  t.is(parseInetDiagMessage(message(1, 80, [])), undefined);
});
