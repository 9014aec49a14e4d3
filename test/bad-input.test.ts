/**
 * Every bad request gets its precise gRPC code and a message naming what is wrong, and
 * leaves the node byte-identical: `ip -j link`, `ip -j addr` and `iptables-save`.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { Topology } from "./helpers/netns.js";
import { iptablesSave } from "./helpers/kernel-state.js";
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

const { INVALID_ARGUMENT, UNIMPLEMENTED } = grpc.status;

const badRequests: BadRequest[] = [
  { name: "definition that is not JSON", definition: "{kind: Function", code: INVALID_ARGUMENT, details: /not valid JSON/ },
  { name: "empty definition", definition: "", code: INVALID_ARGUMENT, details: /not valid JSON/ },
  { name: "definition that is a JSON array", definition: "[]", code: INVALID_ARGUMENT, details: /must be a JSON object/ },
  { name: "missing apiVersion", definition: mutate("apiVersion", undefined), code: INVALID_ARGUMENT, details: /apiVersion is required/ },
  { name: "missing kind", definition: mutate("kind", undefined), code: INVALID_ARGUMENT, details: /kind is required/ },
  { name: "missing name", definition: mutate("name", undefined), code: INVALID_ARGUMENT, details: /name is required/ },
  { name: "kind of the wrong type", definition: mutate("kind", 1), code: INVALID_ARGUMENT, details: /kind must be a string/ },
  { name: "replicas of the wrong type", definition: mutate("replicas", "two"), code: INVALID_ARGUMENT, details: /replicas must be an integer/ },
  { name: "missing spec", definition: mutate("spec", undefined), code: INVALID_ARGUMENT, details: /spec is required/ },
  { name: "Function without spec.function", definition: mutate("spec.function", undefined), code: INVALID_ARGUMENT, details: /spec\.function is required/ },
  { name: "missing rootfs", definition: mutate("spec.function.execution.rootfs", undefined), code: INVALID_ARGUMENT, details: /spec\.function\.execution\.rootfs is required/ },
  { name: "port 0", definition: mutate("spec.function.exposure.port", 0), code: INVALID_ARGUMENT, details: /spec\.function\.exposure\.port must be between 1 and 65535/ },
  { name: "port 65536", definition: mutate("spec.function.exposure.port", 65536), code: INVALID_ARGUMENT, details: /spec\.function\.exposure\.port must be between 1 and 65535/ },
  { name: "negative targetPort", definition: mutate("spec.function.exposure.targetPort", -1), code: INVALID_ARGUMENT, details: /spec\.function\.exposure\.targetPort must be between 1 and 65535/ },
  { name: "port as a string", definition: mutate("spec.function.exposure.port", "8080"), code: INVALID_ARGUMENT, details: /spec\.function\.exposure\.port must be an integer/ },
  { name: "exposure of another type", definition: mutate("spec.function.exposure.type", "ClusterIP"), code: INVALID_ARGUMENT, details: /spec\.function\.exposure\.type must be "NodePort"/ },
  { name: "unknown kind", definition: mutate("kind", "Daemon"), code: INVALID_ARGUMENT, details: /kind "Daemon" is not supported; accepted kinds: Function, Pod/ },
  { name: "Pod", definition: mutate("kind", "Pod"), code: UNIMPLEMENTED, details: /Pod workloads are not supported/ },
  { name: "empty instance id", instanceId: "", code: INVALID_ARGUMENT, details: /invalid instance_id/ },
  { name: "instance id with a space", instanceId: "fn 1", code: INVALID_ARGUMENT, details: /invalid instance_id/ },
  { name: "instance id with a quote", instanceId: 'fn"1', code: INVALID_ARGUMENT, details: /invalid instance_id/ },
  { name: "instance id too long", instanceId: "x".repeat(129), code: INVALID_ARGUMENT, details: /invalid instance_id/ },
  { name: "action outside the enum", action: 7, code: INVALID_ARGUMENT, details: /action/ },
];

/** What must not change: the raw JSON of ip and the whole ruleset. */
async function hostState(topology: Topology) {
  const [links, addrs, rules] = await Promise.all([
    topology.execNode("ip", ["-j", "link"]),
    topology.execNode("ip", ["-j", "addr"]),
    iptablesSave(topology.node),
  ]);
  return { links: String(links.stdout), addrs: String(addrs.stdout), rules };
}

test("each bad request gets its code, names what is wrong, and changes nothing on the host", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const service = await startService({ nodeNs: topology.node, pool: "10.220.0.0/24" });
  t.teardown(() => service.stop());
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());
  // One live instance, so that "unchanged" covers an occupied node, not just an empty one.
  await client.create("existing", functionDefinition({ exposure: { port: 9090, targetPort: 80 } }));
  const before = await hostState(topology);

  for (const bad of badRequests) {
    const failure = await failureOf(
      client.apply({
        instanceId: bad.instanceId ?? "fn-bad",
        definition: bad.definition ?? JSON.stringify(valid),
        action: (bad.action ?? WorkloadRequestKind.CREATE) as WorkloadRequestKind,
      }),
    );
    t.is(failure.code, bad.code, `${bad.name}: ${failure.details}`);
    t.regex(failure.details, bad.details, bad.name);
  }

  t.deepEqual(await hostState(topology), before);
  t.deepEqual((await client.list()).map((n) => n.instanceId), ["existing"]);
  // Every refusal was logged as one RPC outcome with its code.
  const refused = service.logs().filter((entry) => entry.message === "rpc" && entry["code"] !== "OK");
  t.is(refused.length, badRequests.length);
});
