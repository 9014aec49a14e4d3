/**
 * A restart never tears down a live network: with 100 instances whose guests answer
 * behind their TAPs, traffic from the world keeps being answered while the service stops
 * (gracefully or killed), while it is down, while it reconciles, and afterwards.
 */
import test from "ava";
import type { InstanceNetwork } from "../src/gen/rik/network/v1/workload_network_pb.js";
import { fleetGuestBody, startGuestFleet } from "./helpers/guest-fleet.js";
import { kernelDiff } from "./helpers/kernel-diff.js";
import { delay, Topology } from "./helpers/netns.js";
import { startService } from "./helpers/service-process.js";
import { failures, httpGetAll, startTrafficProbe, type ProbeRecord } from "./helpers/traffic-probe.js";
import { functionDefinition, WorkloadClient } from "./helpers/workload-client.js";

const POOL = "10.220.0.0/22";
const INSTANCES = 100;

/** Targets answered at least once in [from, to): proof that traffic flowed in that window. */
function answeredBetween(records: readonly ProbeRecord[], from: number, to: number): Set<number> {
  return new Set(records.filter((r) => r.ok && r.at >= from && r.at < to).map((r) => r.target));
}

test(`with ${INSTANCES} live instances, guests keep answering through a graceful restart and a SIGKILL`, async (t) => {
  t.timeout(5 * 60_000);
  const topology = await Topology.create({ teardown: t });
  let service = await startService({ nodeNs: topology.node, pool: POOL, logLevel: "info" });
  t.teardown(() => service.stop());

  // Step 1: 100 Functions, each exposing its own node port, with a guest behind each TAP.
  const client = new WorkloadClient(service.address);
  const networks: InstanceNetwork[] = [];
  for (let batch = 0; batch < INSTANCES; batch += 20) {
    const created = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        client.create(`live-${batch + i}`, functionDefinition({ exposure: { port: 10_000 + batch + i, targetPort: 3000 } })),
      ),
    );
    networks.push(...created);
  }
  client.close();
  await startGuestFleet({ nodeNs: topology.node, guests: networks.map((n) => n.network.value!), port: 3000 });
  const targets = networks.map((n) => ({
    url: `http://${topology.nodeIp}:${n.network.value!.ports[0]!.hostPort}/`,
    expectBody: fleetGuestBody(n.network.value!.guestIp),
  }));
  t.deepEqual(failures(await httpGetAll(topology.world, targets, { concurrency: 16 })), [], "every guest answers through its node port");

  // Step 2: world traffic round-robins over all of them, for the whole test.
  const probe = await startTrafficProbe({ ns: topology.world, targets, intervalMs: 5, timeoutMs: 2000, maxDurationMs: 180_000 });
  t.teardown(() => probe.stop());

  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    await delay(1000);
    const stoppedAt = Date.now();
    await service.stop(signal);
    await delay(1500); // down: nothing serves the API, the kernel still serves the guests
    const restartAt = Date.now();
    service = await startService({ nodeNs: topology.node, pool: POOL, socketPath: service.socketPath, logLevel: "info" });
    const readyAt = Date.now();
    await delay(1500);
    const records = probe.records();
    t.deepEqual(failures(records), [], `no request failed around the ${signal} restart`);
    t.is(answeredBetween(records, stoppedAt, restartAt).size, INSTANCES, `every guest answered while the service was down after ${signal}`);
    t.true(answeredBetween(records, restartAt, Date.now()).size === INSTANCES, `every guest answered during and after the reconcile after ${signal}`);
    const line = service.logs().find((entry) => entry.message === "reconciled");
    t.like(line, { trigger: "start", instances: INSTANCES, actions: {} }, "the restart found nothing to repair");
    t.log(`${signal}: down ${restartAt - stoppedAt} ms, back in ${readyAt - restartAt} ms`);
  }

  const lister = new WorkloadClient(service.address);
  t.teardown(() => lister.close());
  t.is((await lister.list()).length, INSTANCES);
  t.deepEqual(await kernelDiff(topology.node, networks, POOL), []);
  const all = await probe.stop();
  t.deepEqual(failures(all), []);
  t.log(`${all.length} requests, none failed`);
});
