/**
 * What an operator or a scheduler sees without this project's code: server reflection,
 * the health service, and a client built only from the reflection data that sets up a
 * Function, reaches a guest booted with the returned `ip=` argument, and tears it down.
 */
import test from "ava";
import { httpGet, startGuest, startHttpServer } from "./helpers/guest-relay.js";
import { checkHealth, createHealthClient } from "./helpers/health-client.js";
import { firewallState, ipLinks, tapLinks } from "./helpers/kernel-state.js";
import { Topology } from "./helpers/netns.js";
import { DynamicClient, ReflectionClient } from "./helpers/reflection-client.js";
import { startService } from "./helpers/service-process.js";

const SERVICE = "rik.network.v1.WorkloadNetwork";

/** What a guest kernel does with `ip=<client>::<gateway>:<netmask>::<device>:off`. */
function parseBootArg(bootArg: string) {
  const match = /^ip=([\d.]+)::([\d.]+):([\d.]+)::eth0:off$/.exec(bootArg);
  if (match === null) throw new Error(`unexpected boot argument ${bootArg}`);
  const [, guestIp, hostIp, mask] = match as unknown as [string, string, string, string];
  const prefixLength = mask.split(".").reduce((bits, octet) => bits + Number(octet).toString(2).replaceAll("0", "").length, 0);
  return { guestIp, hostIp, prefixLength };
}

test("reflection lists the service and health, and describes every type the service uses", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const service = await startService({ nodeNs: topology.node });
  t.teardown(() => service.stop());
  const reflection = new ReflectionClient(service.address);
  t.teardown(() => reflection.close());
  const health = createHealthClient(service.address);
  t.teardown(() => health.close());

  const services = await reflection.listServices();
  t.true(services.includes(SERVICE), services.join(", "));
  t.true(services.includes("grpc.health.v1.Health"), services.join(", "));

  const registry = await reflection.registryFor(SERVICE);
  const methods = registry.getService(SERVICE)?.methods.map((m) => `${m.name}(${m.input.typeName}) ${m.methodKind} ${m.output.typeName}`);
  t.deepEqual(methods, [
    "Apply(worker.InstanceScheduling) unary rik.network.v1.ApplyResponse",
    "Get(rik.network.v1.GetRequest) unary rik.network.v1.GetResponse",
    "List(rik.network.v1.ListRequest) unary rik.network.v1.ListResponse",
    "Watch(rik.network.v1.WatchRequest) server_streaming common.WorkerStatus",
  ]);

  t.is(await checkHealth(health), "SERVING");
  t.is(await checkHealth(health, SERVICE), "SERVING");
});

test("a client built only from reflection creates a Function, a guest booted with its ip= argument answers, DESTROY leaves no trace", async (t) => {
  const topology = await Topology.create({ teardown: t });
  const service = await startService({ nodeNs: topology.node });
  t.teardown(() => service.stop());
  const reflection = new ReflectionClient(service.address);
  t.teardown(() => reflection.close());
  const client = new DynamicClient(service.address, await reflection.registryFor(SERVICE), SERVICE);
  t.teardown(() => client.close());
  const before = { rules: await firewallState(topology.node), taps: tapLinks(await ipLinks(topology.node)) };

  // Step 1: Apply CREATE in proto-JSON, the way grpcurl -d would send it.
  const definition = JSON.stringify({
    apiVersion: "v0",
    kind: "Function",
    name: "reflected",
    spec: { function: { execution: { rootfs: "rootfs.ext4" }, exposure: { port: 8088, targetPort: 8000, type: "NodePort" } } },
  });
  const created = (await client.call("Apply", { instanceId: "reflected-1", definition, action: "CREATE" })) as {
    network: { status: string; function: { tapName: string; guestMac: string; mtu: number; bootArg: string } };
  };
  t.is(created.network.status, "RUNNING");
  const fn = created.network.function;

  // Step 2: a guest attaches to the returned TAP and configures itself from the boot argument alone.
  const guest = await startGuest({ nodeNs: topology.node, tapName: fn.tapName, guestMac: fn.guestMac, mtu: fn.mtu, ...parseBootArg(fn.bootArg) });
  await startHttpServer(guest.guestNs, 8000, "served by the reflected guest");

  // Step 3: http://<node>:P/ from the world namespace reaches the server on T in the guest.
  t.deepEqual(await httpGet(topology.world, `http://${topology.nodeIp}:8088/`, 5000), {
    ok: true,
    status: 200,
    body: "served by the reflected guest",
  });

  // Step 4: DESTROY ends it and leaves no trace.
  await guest.stop();
  const destroyed = (await client.call("Apply", { instanceId: "reflected-1", action: "DESTROY" })) as { network: { status: string } };
  t.is(destroyed.network.status, "TERMINATED");
  t.deepEqual(await firewallState(topology.node), before.rules);
  t.deepEqual(tapLinks(await ipLinks(topology.node)), before.taps);
  t.false((await httpGet(topology.world, `http://${topology.nodeIp}:8088/`, 1000)).ok);
});
