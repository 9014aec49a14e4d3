/**
 * Load: 500 creates and destroys, 32 in flight, on random ids that repeat (so the same
 * instance is created again, destroyed twice, created while it exists). No call fails
 * unexpectedly, none fails on the xtables lock, and the kernel ends exactly as acknowledged.
 */
import test from "ava";
import type { InstanceNetwork } from "../src/gen/rik/network/v1/workload_network_pb.js";
import { kernelDiff } from "./helpers/kernel-diff.js";
import { Topology } from "./helpers/netns.js";
import { seededRandom } from "./helpers/seeded-random.js";
import { startService } from "./helpers/service-process.js";
import { functionDefinition, WorkloadClient } from "./helpers/workload-client.js";

const POOL = "10.220.0.0/22";
const OPERATIONS = 500;
const IN_FLIGHT = 32;
const IDS = 80;

test(`${OPERATIONS} creates and destroys with ${IN_FLIGHT} in flight end with exactly the acknowledged instances`, async (t) => {
  t.timeout(5 * 60_000);
  const topology = await Topology.create({ teardown: t });
  const service = await startService({ nodeNs: topology.node, pool: POOL, logLevel: "warn" });
  t.teardown(() => service.stop());
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());

  const random = seededRandom(0x10ad);
  // Half the ids expose a port of their own, half only get egress.
  const definitionOf = (index: number) =>
    functionDefinition({ name: `load-${index}`, exposure: index % 2 === 0 ? { port: 20_000 + index, targetPort: 8080 } : undefined });

  // Operations on one id are issued in order (as a scheduler would), different ids concurrently;
  // the last acknowledged operation of each id decides whether it must exist at the end.
  const last = new Map<string, Promise<unknown>>();
  const expected = new Map<string, InstanceNetwork | undefined>();
  const errors: string[] = [];
  let issued = 0;
  let inFlight = 0;
  let peak = 0;
  const worker = async () => {
    while (issued < OPERATIONS) {
      issued++;
      const index = random(IDS);
      const id = `load-${index}`;
      const create = random(3) !== 0;
      const previous = last.get(id) ?? Promise.resolve();
      const operation = previous.then(async () => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        try {
          if (create) expected.set(id, await client.create(id, definitionOf(index)));
          else {
            await client.destroy(id);
            expected.set(id, undefined);
          }
        } catch (error) {
          errors.push(`${create ? "CREATE" : "DESTROY"} ${id}: ${(error as Error).message}`);
        } finally {
          inFlight--;
        }
      });
      last.set(id, operation);
      await operation;
    }
  };
  const startedAt = Date.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  t.log(`${OPERATIONS} operations in ${Date.now() - startedAt} ms, up to ${peak} in flight`);

  t.deepEqual(errors, [], "no unexpected error");
  const alive = [...expected.values()].filter((n): n is InstanceNetwork => n !== undefined);
  const listed = await client.list();
  t.deepEqual(listed.map((n) => n.instanceId).sort(), alive.map((n) => n.instanceId).sort());
  t.deepEqual(await kernelDiff(topology.node, listed, POOL), []);
  const lockFailures = service.logs().filter((entry) => JSON.stringify(entry).includes("xtables lock"));
  t.deepEqual(lockFailures, []);
});
