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
import test, { type ExecutionContext } from "ava";
import * as grpc from "@grpc/grpc-js";
import { hostState, type HostState } from "./helpers/host-state.js";
import { Topology } from "./helpers/netns.js";
import { startService, type ServiceProcess } from "./helpers/service-process.js";
import { until } from "./helpers/until.js";
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

/**
 * The service, with `<tmp>/state` as its state directory, a 256 KiB tmpfs mounted in a mount
 * namespace of the service's own. With `journal`, that file is copied in as the journal and
 * the tmpfs filled up before the service starts.
 */
async function startOnOwnTmpfs(
  t: ExecutionContext,
  topology: Topology,
  tmp: string,
  options: { readonly journal?: string; readonly extraArgs?: readonly string[] },
): Promise<{ stateDir: string; service: ServiceProcess }> {
  const stateDir = path.join(tmp, "state");
  const mount = 'mkdir -p "$0" && mount -t tmpfs -o size=256k,mode=0700 rikt-state "$0"';
  // dd stops at ENOSPC, with status 1: what is wanted.
  const prepare = options.journal === undefined ? "" : ' && cp "$1" "$0/instances.journal" && { dd if=/dev/zero of="$0/filler" bs=4096 2>/dev/null || true; }';
  const service = await startService({
    nodeNs: topology.node,
    socketPath: path.join(tmp, "rik.sock"),
    stateDir,
    logLevel: "info",
    ...(options.extraArgs === undefined ? {} : { extraArgs: options.extraArgs }),
    launcher: ["unshare", "--mount", "--propagation", "private", "sh", "-c", `${mount}${prepare} && shift && exec "$@"`, stateDir, options.journal ?? "-"],
  });
  t.teardown(() => service.stop());
  return { stateDir, service };
}

/**
 * The host state once the topology's own veths are done with duplicate address detection:
 * their IPv6 link-local addresses are "tentative" until then, which snapshots taken before
 * and after must not differ by.
 */
function settledHostState(topology: Topology): Promise<HostState> {
  return until("the node's addresses to leave duplicate address detection", async () => {
    const state = await hostState(topology);
    return state.addrs.includes('"tentative":true') ? undefined : state;
  });
}

/** A node namespace and a directory of the test's own, both removed at its end. */
async function scene(t: ExecutionContext): Promise<{ topology: Topology; tmp: string }> {
  t.timeout(2 * 60_000);
  const topology = await Topology.create({ teardown: t });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-full-"));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  return { topology, tmp };
}

test("a full state directory fails CREATE and DESTROY with UNAVAILABLE naming it, changes nothing, and the calls work once space is freed", async (t) => {
  const { topology, tmp } = await scene(t);
  const { stateDir, service } = await startOnOwnTmpfs(t, topology, tmp, { extraArgs: ["--max-ports-per-instance", String(PORTS)] });
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());
  // The state directory as the service sees it: on its tmpfs, not on the directory under it.
  const seen = `/proc/${service.pid}/root${stateDir}`;
  t.is(fs.statfsSync(seen).type, 0x01021994, "the service's state directory is its own tmpfs (TMPFS_MAGIC)");
  t.not(fs.statfsSync(stateDir).type, 0x01021994, "which the host's mount namespace does not see");
  const free = () => fs.rmSync(path.join(seen, "filler"));
  const stateNamed = new RegExp(`state directory ${stateDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(--state-dir\\).*free space on it, then retry`);

  const empty = await settledHostState(topology);
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

test("a service restarted on a full state directory starts, serves its instances, and logs that it could not compact the journal", async (t) => {
  const { topology, tmp } = await scene(t);
  // A first run, on an ordinary directory, leaves a journal of two lines for one instance
  // ("creating", "running"): a start compacts such a journal, which needs space.
  const firstDir = path.join(tmp, "first");
  const first = await startService({ nodeNs: topology.node, socketPath: path.join(tmp, "first.sock"), stateDir: firstDir, logLevel: "info" });
  t.teardown(() => first.stop());
  const firstClient = new WorkloadClient(first.address);
  const created = await firstClient.create("f", functionDefinition({ name: "f" }));
  firstClient.close();
  t.is((await first.stop()).exitCode, 0);
  const journal = path.join(firstDir, "instances.journal");
  t.is(fs.readFileSync(journal, "utf8").split("\n").filter(Boolean).length, 2, "the test's premise: the journal has more lines than records");
  const running = await settledHostState(topology);

  const { stateDir, service } = await startOnOwnTmpfs(t, topology, tmp, { journal });
  const seen = `/proc/${service.pid}/root${stateDir}`;
  t.is(fs.statfsSync(seen).bfree, 0, "the test's premise: the service started on a full state directory");
  const warning = service.logs().find((entry) => entry.level === "warn" && entry["state_dir"] === stateDir);
  t.truthy(warning, "the failed compaction is logged");
  t.true(String(warning?.message).includes(`cannot compact the journal in state directory ${stateDir};`), String(warning?.message));
  t.regex(String(warning?.["error"]), /ENOSPC/);
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());
  t.deepEqual(await client.get("f"), created, "the instance is served as it was created");
  t.deepEqual(await hostState(topology), running, "and the restart changed nothing on the host");

  fs.rmSync(path.join(seen, "filler"));
  t.is((await client.destroy("f")).status, ResourceStatus.TERMINATED, "the journal takes lines once space is freed");
  const tapName = created.network.value?.tapName ?? "";
  t.not(tapName, "");
  t.false((await hostState(topology)).links.includes(`"${tapName}"`), "and its TAP is gone");
});
