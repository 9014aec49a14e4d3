/**
 * A full state directory (ENOSPC on the journal) during CREATE and DESTROY: the call gets
 * UNAVAILABLE naming the directory and what to do, the host is left byte-identical, the
 * service keeps serving, and the same call succeeds once space is freed.
 *
 * The state directory is a 256 KiB tmpfs mounted in a mount namespace of the service's own
 * (`unshare --mount` inside the node's `ip netns exec`), so no mount of the host is touched
 * and the mount goes with the service. The test reaches it through /proc/<pid>/root.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { hostState } from "./helpers/host-state.js";
import { Topology } from "./helpers/netns.js";
import { startService } from "./helpers/service-process.js";
import { failureOf, functionDefinition, ResourceStatus, WorkloadClient } from "./helpers/workload-client.js";

/**
 * An instance whose journal lines are longer than a page: a full tmpfs can never take one
 * in the room left in the journal's last page, so every write of one fails.
 */
const PORTS = 100;
const big = functionDefinition({ name: "big", exposure: Array.from({ length: PORTS }, (_, i) => ({ port: 10_000 + i, targetPort: 80 })) });
const PAGE = 4096;

/** Writes a filler file until the file system says ENOSPC. */
function fill(dir: string): void {
  const fd = fs.openSync(path.join(dir, "filler"), "a");
  const chunk = Buffer.alloc(PAGE, 0x78);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
  } finally {
    fs.closeSync(fd);
  }
}

test("a full state directory fails CREATE and DESTROY with UNAVAILABLE naming it, changes nothing, and the calls work once space is freed", async (t) => {
  t.timeout(2 * 60_000);
  const topology = await Topology.create({ teardown: t });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-full-"));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const stateDir = path.join(tmp, "state");
  const service = await startService({
    nodeNs: topology.node,
    socketPath: path.join(tmp, "rik.sock"),
    stateDir,
    logLevel: "info",
    extraArgs: ["--max-ports-per-instance", String(PORTS)],
    launcher: [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      'mkdir -p "$0" && mount -t tmpfs -o size=256k,mode=0700 rikt-state "$0" && exec "$@"',
      stateDir,
    ],
  });
  t.teardown(() => service.stop());
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());
  // The state directory as the service sees it: on its tmpfs, not on the directory under it.
  const seen = `/proc/${service.pid}/root${stateDir}`;
  t.is(fs.statfsSync(seen).type, 0x01021994, "the service's state directory is its own tmpfs (TMPFS_MAGIC)");
  t.not(fs.statfsSync(stateDir).type, 0x01021994, "which the host's mount namespace does not see");
  const free = () => fs.rmSync(path.join(seen, "filler"));
  const stateNamed = new RegExp(`state directory ${stateDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(--state-dir\\).*free space on it, then retry`);

  const empty = await hostState(topology);
  fill(seen);
  t.is(fs.statfsSync(seen).bfree, 0);
  const refusedCreate = await failureOf(client.create("big", big));
  t.is(refusedCreate.code, grpc.status.UNAVAILABLE, refusedCreate.details);
  t.regex(refusedCreate.details, stateNamed);
  t.deepEqual(await hostState(topology), empty, "a CREATE refused for a full disk changed the host");
  t.deepEqual(await client.list(), [], "nothing recorded, and the service still serves");

  free();
  const created = await client.create("big", big);
  t.is(created.status, ResourceStatus.RUNNING, "the same CREATE works once there is space");
  t.is(created.network.value?.ports.length, PORTS);
  const lines = fs.readFileSync(path.join(seen, "instances.journal"), "utf8").split("\n").filter(Boolean);
  t.true(lines.every((line) => line.length > PAGE), "the test's premise: each line of the instance needs a page of its own");
  const running = await hostState(topology);

  fill(seen);
  const refusedDestroy = await failureOf(client.destroy("big"));
  t.is(refusedDestroy.code, grpc.status.UNAVAILABLE, refusedDestroy.details);
  t.regex(refusedDestroy.details, stateNamed);
  t.deepEqual(await client.get("big"), created, "the instance is still there, running, as created");
  t.deepEqual(await hostState(topology), running, "a DESTROY refused for a full disk changed the host");

  free();
  t.is((await client.destroy("big")).status, ResourceStatus.TERMINATED, "the same DESTROY works once there is space");
  t.deepEqual(await client.list(), []);
  t.deepEqual(await hostState(topology), empty, "and the host is as it was before the instance");
});
