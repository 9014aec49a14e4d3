import test from "ava";
import { NetworkError } from "./network-error.js";
import { PortPolicy } from "./port-policy.js";

const policy = new PortPolicy({ min: 1024, max: 32767, reserved: [9464, 7100, 9464] });

test("22 is always reserved, and the list is deduplicated and sorted", (t) => {
  t.deepEqual(policy.reserved, [22, 7100, 9464]);
  t.is(policy.toString(), "host ports 1024-32767 except 22, 7100, 9464");
});

test("ports inside the range and not reserved pass, on both protocols", (t) => {
  t.notThrows(() => policy.check({ protocol: "tcp", hostPort: 1024, guestPort: 1 }));
  t.notThrows(() => policy.check({ protocol: "udp", hostPort: 32767, guestPort: 1 }));
});

for (const [hostPort, problem] of [
  [22, /host port 22\/TCP is reserved by the node's port policy \(host ports 1024-32767 except 22, 7100, 9464\)/],
  [9464, /host port 9464\/TCP is reserved/],
  [1023, /host port 1023\/TCP is outside the node's port policy/],
  [32768, /host port 32768\/TCP is outside the node's port policy/],
] as const) {
  test(`port ${hostPort} is refused as invalid-argument naming the policy`, (t) => {
    const error = t.throws(() => policy.check({ protocol: "tcp", hostPort, guestPort: 80 }), { instanceOf: NetworkError });
    t.is(error.code, "invalid-argument");
    t.regex(error.message, problem);
    t.regex(error.message, /--host-ports \/ --reserved-ports/);
  });
}

test("an inverted or out-of-range policy cannot be built", (t) => {
  t.throws(() => new PortPolicy({ min: 2000, max: 1000, reserved: [] }), { message: /1 <= min <= max <= 65535/ });
  t.throws(() => new PortPolicy({ min: 0, max: 10, reserved: [] }));
  t.throws(() => new PortPolicy({ min: 1, max: 65536, reserved: [] }));
});
