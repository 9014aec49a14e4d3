import test from "ava";
import { hostListeners, parseProcNetSockets, shadowedListener } from "./host-listeners.js";
import type { HostListener } from "./sock-diag.js";

const header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

test("TCP: only LISTEN sockets count, addresses decoded from host byte order", (t) => {
  const text =
    header +
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0\n" +
    "   1: 0100A8C0:0016 0200A8C0:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0\n" +
    "   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0\n";
  t.deepEqual(parseProcNetSockets(text, "tcp", true), [
    { protocol: "tcp", address: "127.0.0.1", port: 8080 },
    { protocol: "tcp", address: "0.0.0.0", port: 80 },
  ]);
});

test("UDP: bound and unconnected sockets count, connected ones do not", (t) => {
  const text =
    header +
    " 100: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0\n" +
    " 101: 0100A8C0:9C40 08080808:0035 01 00000000:00000000 00:00000000 00000000     0        0 2 2 0 0\n";
  t.deepEqual(parseProcNetSockets(text, "udp", true), [{ protocol: "udp", address: "0.0.0.0", port: 5353 }]);
});

test("IPv6: the wildcard and v4-mapped addresses are read as IPv4, other IPv6 addresses as ipv6", (t) => {
  const text =
    header +
    "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0 0 0 0 0 1\n" +
    "   1: 0000000000000000FFFF00000100007F:1F91 00000000000000000000000000000000:0000 0A 0 0 0 0 0 1\n" +
    "   2: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A 0 0 0 0 0 1\n";
  t.deepEqual(parseProcNetSockets(text, "tcp", true), [
    { protocol: "tcp", address: "0.0.0.0", port: 8080 },
    { protocol: "tcp", address: "127.0.0.1", port: 8081 },
    { protocol: "tcp", address: "ipv6", port: 8082 },
  ]);
});

test("big-endian hosts print addresses in network order", (t) => {
  const text = header + "   0: 7F000001:1F90 00000000:0000 0A 0 0 0 0 0 1\n";
  t.deepEqual(parseProcNetSockets(text, "tcp", false), [{ protocol: "tcp", address: "127.0.0.1", port: 8080 }]);
});

const listeners: HostListener[] = [
  { protocol: "tcp", address: "0.0.0.0", port: 80 },
  { protocol: "tcp", address: "192.0.2.10", port: 8080 },
  { protocol: "udp", address: "127.0.0.1", port: 5353 },
  { protocol: "tcp", address: "ipv6", port: 9000 },
];
const on = { localhost: true };

test("a wildcard listener is shadowed by any DNAT of its port and protocol", (t) => {
  t.deepEqual(shadowedListener(listeners, { protocol: "tcp", hostPort: 80, guestPort: 1 }, on), listeners[0]);
  t.deepEqual(shadowedListener(listeners, { protocol: "tcp", hostPort: 80, guestPort: 1, hostIp: "192.0.2.99" }, on), listeners[0]);
  t.is(shadowedListener(listeners, { protocol: "udp", hostPort: 80, guestPort: 1 }, on), undefined);
});

test("a listener on one address is shadowed by an unbound port or one bound to that address only", (t) => {
  t.deepEqual(shadowedListener(listeners, { protocol: "tcp", hostPort: 8080, guestPort: 1 }, on), listeners[1]);
  t.deepEqual(shadowedListener(listeners, { protocol: "tcp", hostPort: 8080, guestPort: 1, hostIp: "192.0.2.10" }, on), listeners[1]);
  t.is(shadowedListener(listeners, { protocol: "tcp", hostPort: 8080, guestPort: 1, hostIp: "192.0.2.11" }, on), undefined);
});

test("a loopback listener is shadowed only when localhost is DNATed; IPv6-only listeners never", (t) => {
  t.deepEqual(shadowedListener(listeners, { protocol: "udp", hostPort: 5353, guestPort: 1 }, on), listeners[2]);
  t.is(shadowedListener(listeners, { protocol: "udp", hostPort: 5353, guestPort: 1 }, { localhost: false }), undefined);
  t.is(shadowedListener(listeners, { protocol: "tcp", hostPort: 9000, guestPort: 1 }, on), undefined);
});

test("hostListeners asks only for the protocols it is given", async (t) => {
  let dumps = 0;
  const sockDiag = {
    tcpListeners: async () => {
      dumps += 1;
      return [{ protocol: "tcp" as const, address: "0.0.0.0", port: 22 }];
    },
  };
  t.deepEqual(await hostListeners(sockDiag, new Set(["tcp"])), [{ protocol: "tcp", address: "0.0.0.0", port: 22 }]);
  t.is(dumps, 1);
  const udpOnly = await hostListeners(sockDiag, new Set(["udp"]));
  t.is(dumps, 1, "no sock_diag dump for a UDP-only create");
  t.true(udpOnly.every((listener) => listener.protocol === "udp"));
  t.deepEqual(await hostListeners(sockDiag, new Set()), []);
});
