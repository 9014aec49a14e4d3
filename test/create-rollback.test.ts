/**
 * A CREATE whose rules the kernel refuses is rolled back whole, even when the rollback's own
 * rule delete fails: the TAP, really created, is really deleted, the host is byte-identical,
 * and the caller gets the first error (the append's), not the rollback's. The instance is
 * kept, failed, until a DESTROY: the service cannot know what the failed delete left.
 * The refusals are injected per backend: iptables binaries first in the service's PATH
 * (faulty-iptables.ts), or a preload that refuses the nft transactions (faulty-nft.ts).
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { tapNameFor } from "../src/network/model/instance-naming.js";
import { TEST_FIREWALL_BACKEND } from "./helpers/firewall-backend.js";
import { faultyIptables } from "./helpers/faulty-iptables.js";
import { faultyNft } from "./helpers/faulty-nft.js";
import { hostState } from "./helpers/host-state.js";
import { spawnIn, Topology } from "./helpers/netns.js";
import { ProcessOutput } from "./helpers/process-output.js";
import { startService } from "./helpers/service-process.js";
import { until } from "./helpers/until.js";
import { failureOf, functionDefinition, ResourceStatus, WorkloadClient } from "./helpers/workload-client.js";

/** Whether a line of `ip -o monitor link` is about link `name` ("[Deleted ]N: name[@peer]: <flags> ..."). */
const names = (line: string, name: string) => new RegExp(`^(Deleted )?\\d+: ${name}[@:]`).test(line);

/** The backend's refusals of one instance's rules: how the service is started with them, and the add's error. */
function faultyFirewall(t: { teardown(fn: () => void): void }, instanceId: string) {
  if (TEST_FIREWALL_BACKEND === "nft") {
    const nft = faultyNft(t, instanceId);
    return { ...nft, service: { nodeArgs: nft.nodeArgs, env: nft.env }, addRefused: /DNAT add refused/ };
  }
  const iptables = faultyIptables(t, instanceId);
  return { ...iptables, service: { env: { PATH: `${iptables.dir}:${process.env["PATH"] ?? ""}` } }, addRefused: /rule append refused/ };
}

test("a rollback whose rule delete fails still deletes the TAP, and the CREATE fails with the first error", async (t) => {
  t.timeout(2 * 60_000);
  const topology = await Topology.create({ teardown: t });
  const firewall = faultyFirewall(t, "doomed");
  const service = await startService({
    nodeNs: topology.node,
    logLevel: "info",
    // No resync: it would read iptables-save, which the fault refuses for a while, or retry the refused nft delete.
    extraArgs: ["--resync-interval", "0"],
    ...firewall.service,
  });
  t.teardown(() => service.stop());
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());
  const tap = tapNameFor("doomed");
  // Every change of a link in the node, as the kernel reports it: proof that the TAP came and went.
  const monitor = new ProcessOutput(spawnIn(topology.node, "ip", ["-o", "monitor", "link"]), "ip monitor link");
  t.teardown(() => void monitor.subprocess.kill());
  // Once it reports a link of ours, it is subscribed; one made before it subscribed goes
  // unreported, so probes are made until one is.
  let probes = 0;
  await until("ip monitor to report a probe link", async () => {
    const probe = `probe${++probes}`;
    await topology.execNode("ip", ["link", "add", probe, "type", "veth", "peer", "name", `peer${probes}`]);
    const seen = await monitor.waitForLine((line) => names(line, probe), 1000, probe).then(() => true, () => false);
    await topology.execNode("ip", ["link", "del", probe]);
    return seen ? true : undefined;
  }, 30_000);
  const before = await hostState(topology);

  const failure = await failureOf(client.create("doomed", functionDefinition({ name: "doomed", exposure: { port: 8080, targetPort: 80 } })));
  t.is(failure.code, grpc.status.INTERNAL, failure.details);
  t.regex(failure.details, firewall.addRefused, "the error that made the CREATE fail, not the rollback's");
  t.true(firewall.deleteRefused(), "the rollback's rule delete was refused too");

  await monitor.waitForLine((line) => line.startsWith("Deleted ") && names(line, tap), 10_000, `the deletion of TAP ${tap}`);
  t.true(monitor.stdout.some((line) => !line.startsWith("Deleted ") && names(line, tap)), `TAP ${tap} was there before`);
  const links = JSON.parse(String((await topology.execNode("ip", ["-j", "link"])).stdout)) as { ifname: string }[];
  t.false(links.some((link) => link.ifname === tap), `TAP ${tap} is gone`);
  firewall.heal();
  t.deepEqual(await hostState(topology), before, "the host is as before the CREATE");
  t.truthy(
    service.logs().find((entry) => entry.message.startsWith("a rollback step failed") && entry["step"] === "delete the rules" && entry["instance_id"] === "doomed"),
    "the rollback's failure is logged",
  );
  // Its rollback was not whole, so it is kept, failed, with its /30, until a DESTROY (or the resync) makes sure.
  t.deepEqual((await client.list()).map((n) => [n.instanceId, n.status]), [["doomed", ResourceStatus.FAILED]]);
  t.is((await client.destroy("doomed")).status, ResourceStatus.TERMINATED);
  t.deepEqual(await client.list(), []);
  t.deepEqual(await hostState(topology), before, "and still after its DESTROY");
  t.is((await client.create("other", functionDefinition({ name: "other", exposure: { port: 8081, targetPort: 80 } }))).status, ResourceStatus.RUNNING, "the service still serves");
});
