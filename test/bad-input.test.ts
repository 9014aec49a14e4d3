/**
 * A table-driven corpus of bad requests. Each gets its precise gRPC code and a message
 * naming what is wrong, and leaves the node byte-identical: `ip -j link`, `ip -j addr`
 * and the firewall (`iptables-save`, `nft list ruleset`) are the same before and after it.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { hostState } from "./helpers/host-state.js";
import { Topology } from "./helpers/netns.js";
import { startService } from "./helpers/service-process.js";
import { failureOf, functionDefinition, WorkloadClient, WorkloadRequestKind } from "./helpers/workload-client.js";

const valid = JSON.parse(functionDefinition({ exposure: { port: 8080, targetPort: 3000 } })) as Record<string, any>;

/** The valid definition with one path replaced (or removed, for `undefined`). */
function mutate(path: string, value: unknown): string {
  const copy = structuredClone(valid);
  const keys = path.split(".");
  let node = copy;
  for (const key of keys.slice(0, -1)) node = node[key];
  if (value === undefined) delete node[keys.at(-1)!];
  else node[keys.at(-1)!] = value;
  return JSON.stringify(copy);
}

interface BadRequest {
  readonly name: string;
  readonly instanceId?: string;
  readonly definition?: string;
  readonly action?: number;
  readonly code: grpc.status;
  readonly details: RegExp;
}

const { INVALID_ARGUMENT, UNIMPLEMENTED, ALREADY_EXISTS, FAILED_PRECONDITION, RESOURCE_EXHAUSTED } = grpc.status;
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const wrongTypes: [string, unknown][] = [
  ["null", null],
  ["a number", 42],
  ["a boolean", true],
  ["an array", ["x"]],
  ["an object", { x: 1 }],
];

const corpus: BadRequest[] = [];
const invalid = (name: string, definition: string, details: RegExp) => corpus.push({ name, definition, code: INVALID_ARGUMENT, details });

for (const text of ["", "{", "[]", "null", "42", '"Function"', "{]}", "{'kind':'Function'}", "{\"kind\": Function}"]) {
  invalid(`definition ${JSON.stringify(text)}`, text, /invalid workload definition: (not valid JSON|the definition must be a JSON object)/);
}
for (const field of ["apiVersion", "kind", "name", "spec.function.execution.rootfs"]) {
  invalid(`missing ${field}`, mutate(field, undefined), new RegExp(`${escape(field)} is (required|required for a Function)`));
  invalid(`empty ${field}`, mutate(field, "  "), new RegExp(`${escape(field)} must not be empty`));
  for (const [label, value] of wrongTypes) {
    invalid(`${field} as ${label}`, mutate(field, value), new RegExp(`${escape(field)} must be a string, got `));
  }
}
for (const field of ["port", "targetPort"]) {
  const path = `spec.function.exposure.${field}`;
  invalid(`missing ${field}`, mutate(path, undefined), new RegExp(`${escape(path)} is required`));
  for (const value of [0, -1, 65536, 1_000_000]) {
    invalid(`${field} ${value}`, mutate(path, value), new RegExp(`${escape(path)} must be between 1 and 65535, got ${value}`));
  }
  for (const value of [1.5, "80", true, [80], { port: 80 }, null]) {
    invalid(`${field} as ${JSON.stringify(value)}`, mutate(path, value), new RegExp(`${escape(path)} must be an integer port number`));
  }
}
for (const value of ["8080", 8080, true]) {
  invalid(`exposure as ${JSON.stringify(value)}`, mutate("spec.function.exposure", value), /spec\.function\.exposure must be an object/);
}
for (const value of [["8080"], [null], [{ port: 1, targetPort: 1 }, 7]]) {
  invalid(`exposure as ${JSON.stringify(value)}`, mutate("spec.function.exposure", value), /spec\.function\.exposure\[\d\] must be an object/);
}
for (const value of ["SCTP", "tcp/udp", 6, ""]) {
  invalid(`exposure protocol ${JSON.stringify(value)}`, mutate("spec.function.exposure.protocol", value), /spec\.function\.exposure\.protocol must be "TCP" or "UDP"/);
}
for (const value of ["node-1", "::1", "10.0.0", 7]) {
  invalid(`exposure hostIP ${JSON.stringify(value)}`, mutate("spec.function.exposure.hostIP", value), /spec\.function\.exposure\.hostIP must be an IPv4 address/);
}
invalid(
  "a host port twice on one protocol",
  mutate("spec.function.exposure", [{ port: 8080, targetPort: 1 }, { port: 8080, targetPort: 2 }]),
  /exposure\[1\]\.port 8080\/TCP is already exposed by spec\.function\.exposure\[0\]/,
);
for (const port of [22, 9464, 32768, 65535]) {
  invalid(`host port ${port} outside the port policy`, mutate("spec.function.exposure.port", port), new RegExp(`host port ${port}/TCP is (reserved by|outside) the node's port policy`));
}
corpus.push({
  name: "a hostIP that is not the node's",
  definition: mutate("spec.function.exposure.hostIP", "192.0.2.77"),
  code: FAILED_PRECONDITION,
  details: /binds to 192\.0\.2\.77, which is not an address of this node/,
});
for (const value of ["ClusterIP", "nodeport", "", 1]) {
  invalid(`exposure type ${JSON.stringify(value)}`, mutate("spec.function.exposure.type", value), /spec\.function\.exposure\.type must be "NodePort"/);
}
for (const value of ["spec", 1, ["x"], null]) {
  invalid(`spec as ${JSON.stringify(value)}`, mutate("spec", value), /spec must be an object/);
}
for (const value of [{}, "containers", 3]) {
  invalid(`containers as ${JSON.stringify(value)}`, mutate("spec.containers", value), /spec\.containers must be an array/);
}
for (const value of ["fn", 1, ["x"]]) {
  invalid(`function as ${JSON.stringify(value)}`, mutate("spec.function", value), /spec\.function must be an object/);
}
invalid("missing function", mutate("spec.function", undefined), /spec\.function is required for a Function workload/);
for (const value of [undefined, "exec", ["x"]]) {
  invalid(`execution as ${JSON.stringify(value)}`, mutate("spec.function.execution", value), /spec\.function\.execution (is required|must be an object)/);
}
for (const value of [-1, 1.5, "2", 65536, true]) {
  invalid(`replicas ${JSON.stringify(value)}`, mutate("replicas", value), /replicas must be an integer between 0 and 65535/);
}
for (const kind of ["Daemon", "function", "FUNCTION", "Function ", "VM"]) {
  invalid(`kind ${JSON.stringify(kind)}`, mutate("kind", kind), /is not supported; accepted kinds: Function, Pod/);
}
corpus.push({ name: "kind Pod", definition: mutate("kind", "Pod"), code: UNIMPLEMENTED, details: /Pod workloads are not supported/ });
/** A hostile id: it must reach the service's log line cut and escaped, never raw. */
const hostileId = `evil\n{"level":"error","message":"forged"}\u001b[2J${"z".repeat(100_000)}`;
for (const instanceId of ["", " ", "a b", "-a", ".a", "_a", "a/b", "../etc", 'a"b', "a;b", "a\nb", "a\tb", "ünicode", "x".repeat(129), "a\u0000b", "*", "a:b", "a,b", hostileId]) {
  corpus.push({ name: `instance id ${JSON.stringify(instanceId)}`, instanceId, code: INVALID_ARGUMENT, details: /invalid instance_id/ });
}
for (const action of [2, 7, -1]) {
  corpus.push({ name: `action ${action}`, action, code: INVALID_ARGUMENT, details: /action/ });
}
corpus.push({
  name: "host port held by another instance",
  definition: JSON.stringify({ ...valid, spec: { function: { ...valid.spec.function, exposure: { port: 9090, targetPort: 1, type: "NodePort" } } } }),
  code: ALREADY_EXISTS,
  details: /host port 9090\/TCP is already exposed by instance "existing"/,
});
corpus.push({ name: "existing instance with another exposure", instanceId: "existing", code: FAILED_PRECONDITION, details: /instance "existing" already exists with another exposure, and its network cannot change; DESTROY it first/ });
invalid(
  "more exposure entries than --max-ports-per-instance (64 by default)",
  mutate("spec.function.exposure", Array.from({ length: 65 }, (_, i) => ({ port: 10_000 + i, targetPort: 80 }))),
  /spec\.function\.exposure has 65 entries, more than the 64 an instance may have on this node \(--max-ports-per-instance\)/,
);
corpus.push({ name: "a message over the size limit", definition: mutate("name", "n".repeat(2 * 1024 * 1024)), code: RESOURCE_EXHAUSTED, details: /./ });

test(`each of ${corpus.length} bad requests gets its code, names what is wrong, and leaves the host byte-identical`, async (t) => {
  t.timeout(3 * 60_000);
  t.true(corpus.length >= 100);
  const topology = await Topology.create({ teardown: t });
  const service = await startService({ nodeNs: topology.node, pool: "10.220.0.0/24", logLevel: "info" });
  t.teardown(() => service.stop());
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());
  // One live instance, so that "unchanged" covers an occupied node, not just an empty one.
  const existingDefinition = JSON.parse(functionDefinition({ exposure: { port: 9090, targetPort: 80 } })) as Record<string, any>;
  const existing = await client.create("existing", JSON.stringify(existingDefinition));
  const before = await hostState(topology);

  for (const bad of corpus) {
    const failure = await failureOf(
      client.apply({
        instanceId: bad.instanceId ?? "fn-bad",
        definition: bad.definition ?? JSON.stringify(valid),
        action: (bad.action ?? WorkloadRequestKind.CREATE) as WorkloadRequestKind,
      }),
    );
    t.is(failure.code, bad.code, `${bad.name}: ${failure.details}`);
    t.regex(failure.details, bad.details, bad.name);
    t.deepEqual(await hostState(topology), before, `${bad.name} changed the host`);
  }

  t.deepEqual((await client.list()).map((n) => n.instanceId), ["existing"]);
  // A repeated CREATE whose network would be the same is the same instance, whatever else changed.
  const sameNetwork = structuredClone(existingDefinition);
  sameNetwork.name = "renamed";
  sameNetwork.replicas = 3;
  sameNetwork.spec.function.execution.rootfs = "https://example.invalid/other-rootfs.ext4";
  sameNetwork.spec.function.exposure = [{ port: 9090, targetPort: 80, protocol: "tcp" }];
  t.deepEqual(await client.create("existing", JSON.stringify(sameNetwork)), existing, "the same network back");
  t.deepEqual(await hostState(topology), before, "a repeated CREATE changed the host");
  // No raw id of a caller's in the log: invalid ones are cut and escaped.
  for (const entry of service.logs().filter((line) => line.message === "rpc")) {
    const shown = String(entry["instance_id"] ?? "");
    t.true(shown.length < 200 && /^[\x20-\x7e…]*$/u.test(shown), `logged instance_id ${shown.slice(0, 300)}`);
  }
  const hostileShown = service.logs().find((line) => String(line["instance_id"]).startsWith('"evil\\u000a{\\"level\\":'));
  t.true(String(hostileShown?.["instance_id"]).endsWith(`"… (${hostileId.length} characters)`), "the hostile id, cut, escaped and with its length");
  // Every refusal that reached the service was logged as one RPC outcome with its code.
  const refused = service.logs().filter((entry) => entry.message === "rpc" && entry["code"] !== "OK");
  t.is(refused.length, corpus.length - 1, "all but the oversized message, which grpc-js refuses before any handler");
});
