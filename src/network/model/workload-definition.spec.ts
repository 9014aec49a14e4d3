import test from "ava";
import { NetworkError } from "./network-error.js";
import { parseWorkloadDefinition } from "./workload-definition.js";

const rikFunction = {
  apiVersion: "v0",
  kind: "Function",
  name: "hello",
  replicas: 1,
  spec: {
    containers: [],
    function: {
      execution: { rootfs: "https://example.invalid/alpine.tar.gz" },
      exposure: { port: 8080, targetPort: 3000, type: "NodePort" },
    },
  },
};

function withPath(path: string[], value: unknown): string {
  const copy = structuredClone(rikFunction) as Record<string, any>;
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key];
  if (value === undefined) delete node[path.at(-1)!];
  else node[path.at(-1)!] = value;
  return JSON.stringify(copy);
}

test("parses RIK's Function workload with its single exposure", (t) => {
  const definition = parseWorkloadDefinition(JSON.stringify(rikFunction));
  t.is(definition.kind, "Function");
  t.is(definition.name, "hello");
  t.is(definition.replicas, 1);
  t.deepEqual(definition.spec.function, {
    execution: { rootfs: "https://example.invalid/alpine.tar.gz" },
    exposure: [{ port: 8080, targetPort: 3000, protocol: "tcp", type: "NodePort" }],
  });
});

test("an exposure array mixes protocols, defaults to TCP and NodePort, and binds a hostIP when given", (t) => {
  const definition = parseWorkloadDefinition(
    withPath(["spec", "function", "exposure"], [
      { port: 8080, targetPort: 3000 },
      { port: 5353, targetPort: 53, protocol: "UDP", type: "NodePort" },
      { port: 5353, targetPort: 5353, protocol: "tcp", hostIP: "192.0.2.10" },
    ]),
  );
  t.deepEqual(definition.spec.function?.exposure, [
    { port: 8080, targetPort: 3000, protocol: "tcp", type: "NodePort" },
    { port: 5353, targetPort: 53, protocol: "udp", type: "NodePort" },
    { port: 5353, targetPort: 5353, protocol: "tcp", type: "NodePort", hostIP: "192.0.2.10" },
  ]);
});

test("an empty exposure array exposes nothing", (t) => {
  t.deepEqual(parseWorkloadDefinition(withPath(["spec", "function", "exposure"], [])).spec.function?.exposure, []);
});

test("a missing exposure means no port mapping; containers default to none", (t) => {
  const definition = parseWorkloadDefinition(withPath(["spec"], { function: { execution: { rootfs: "r" } } }));
  t.is(definition.spec.function?.exposure, undefined);
  t.deepEqual(definition.spec.containers, []);
});

test("a Pod needs no function", (t) => {
  const definition = parseWorkloadDefinition(JSON.stringify({ apiVersion: "v0", kind: "Pod", name: "p", spec: { containers: [{ name: "c" }] } }));
  t.is(definition.kind, "Pod");
  t.is(definition.spec.function, undefined);
});

const invalid: [string, string, RegExp][] = [
  ["not JSON", "{", /not valid JSON/],
  ["an array", "[]", /must be a JSON object/],
  ["missing apiVersion", withPath(["apiVersion"], undefined), /apiVersion is required/],
  ["numeric kind", withPath(["kind"], 3), /kind must be a string, got number 3/],
  ["empty name", withPath(["name"], " "), /name must not be empty/],
  ["negative replicas", withPath(["replicas"], -1), /replicas must be an integer/],
  ["missing spec", withPath(["spec"], undefined), /spec is required/],
  ["spec as string", withPath(["spec"], "x"), /spec must be an object/],
  ["containers not array", withPath(["spec", "containers"], {}), /spec\.containers must be an array/],
  ["Function without function", withPath(["spec", "function"], undefined), /spec\.function is required for a Function/],
  ["missing execution", withPath(["spec", "function", "execution"], undefined), /spec\.function\.execution is required/],
  ["missing rootfs", withPath(["spec", "function", "execution", "rootfs"], undefined), /spec\.function\.execution\.rootfs is required/],
  ["exposure as a string", withPath(["spec", "function", "exposure"], "8080"), /spec\.function\.exposure must be an object/],
  ["exposure array of strings", withPath(["spec", "function", "exposure"], ["8080"]), /spec\.function\.exposure\[0\] must be an object/],
  ["bad port in an array", withPath(["spec", "function", "exposure"], [{ port: 1, targetPort: 1 }, { port: 0, targetPort: 1 }]), /exposure\[1\]\.port must be between 1 and 65535/],
  ["unknown protocol", withPath(["spec", "function", "exposure", "protocol"], "SCTP"), /exposure\.protocol must be "TCP" or "UDP", got the string "SCTP"/],
  ["numeric protocol", withPath(["spec", "function", "exposure", "protocol"], 6), /exposure\.protocol must be "TCP" or "UDP"/],
  ["hostIP not an address", withPath(["spec", "function", "exposure", "hostIP"], "node-1"), /exposure\.hostIP must be an IPv4 address/],
  ["hostIP IPv6", withPath(["spec", "function", "exposure", "hostIP"], "::1"), /exposure\.hostIP must be an IPv4 address/],
  ["hostIP unspecified", withPath(["spec", "function", "exposure", "hostIP"], "0.0.0.0"), /exposure\.hostIP must be a unicast address/],
  ["hostIP multicast", withPath(["spec", "function", "exposure", "hostIP"], "239.1.1.1"), /exposure\.hostIP must be a unicast address/],
  [
    "a port twice on one protocol",
    withPath(["spec", "function", "exposure"], [{ port: 8080, targetPort: 1 }, { port: 8080, targetPort: 2, protocol: "TCP" }]),
    /exposure\[1\]\.port 8080\/TCP is already exposed by spec\.function\.exposure\[0\]/,
  ],
  ["port 0", withPath(["spec", "function", "exposure", "port"], 0), /spec\.function\.exposure\.port must be between 1 and 65535, got 0/],
  ["port 65536", withPath(["spec", "function", "exposure", "port"], 65536), /exposure\.port must be between 1 and 65535/],
  ["port as string", withPath(["spec", "function", "exposure", "port"], "80"), /exposure\.port must be an integer port number, got the string "80"/],
  ["fractional targetPort", withPath(["spec", "function", "exposure", "targetPort"], 80.5), /exposure\.targetPort must be an integer/],
  ["missing targetPort", withPath(["spec", "function", "exposure", "targetPort"], undefined), /exposure\.targetPort is required/],
  ["wrong type", withPath(["spec", "function", "exposure", "type"], "LoadBalancer"), /exposure\.type must be "NodePort"/],
];

for (const [name, text, message] of invalid) {
  test(`rejects ${name} naming the field`, (t) => {
    const error = t.throws(() => parseWorkloadDefinition(text), { instanceOf: NetworkError });
    t.is(error.code, "invalid-argument");
    t.regex(error.message, message);
  });
}
