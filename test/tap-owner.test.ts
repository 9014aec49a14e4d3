/**
 * Who may attach to a Function's TAP: a jailed Firecracker runs as an unprivileged user
 * without CAP_NET_ADMIN, and attaches with TUNSETIFF like any VMM. Each test CREATEs a
 * Function on the real service, then, in the node namespace, runs test/fixtures/attach-tap.mjs
 * as such a user (setpriv: another uid and gid, no supplementary groups, no capabilities, not
 * even in the bounding set) on a /dev/net/tun descriptor opened for it, as the jailer's own
 * device node would be, and checks what the kernel answers.
 */
import test, { type ExecutionContext } from "ava";
import { ipLinks, sparesOnce, tapLinks } from "./helpers/kernel-state.js";
import { REPO_ROOT, type Topology } from "./helpers/netns.js";
import { startService } from "./helpers/service-process.js";
import { startNode } from "./helpers/start-node.js";
import { functionDefinition } from "./helpers/workload-client.js";

const ATTACH = "test/fixtures/attach-tap.mjs";
const NOBODY = 65534;
/** Neither nobody nor in its group. */
const STRANGER = 65533;

interface Attach {
  readonly uid: number;
  readonly gid: number;
  readonly groups: number[];
  readonly effectiveCaps: string;
  readonly ok: boolean;
  readonly code?: string;
  readonly message?: string;
}

/** TUNSETIFF to `tap` as `uid`:`gid` (and only that group), with no capability at all. */
async function attachAs(t: ExecutionContext, topology: Topology, tap: string, uid: number, gid: number): Promise<Attach> {
  const setpriv = ["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"];
  const { stdout } = await topology.execNode("sh", ["-c", 'exec 3<>/dev/net/tun && exec "$@"', "sh", ...setpriv, process.execPath, ATTACH, tap], {
    cwd: REPO_ROOT,
  });
  const result = JSON.parse(String(stdout)) as Attach;
  // What makes the check mean something: the attach ran unprivileged.
  t.like(result, { uid, gid, groups: [gid], effectiveCaps: "0000000000000000" }, "unprivileged");
  return result;
}

/**
 * A node serving with `extraArgs`, and the TAP of a Function created on it: a former spare
 * unless `--spare-taps 0` is among the arguments (then the CREATE makes it).
 */
async function createdTap(t: ExecutionContext, extraArgs: string[]) {
  const { topology, service, client } = await startNode(t, { service: { extraArgs } });
  const withSpares = !extraArgs.join(" ").includes("--spare-taps 0");
  // All four (the default count): only then is every spare but the last surely ready to be taken.
  const spares = withSpares ? await sparesOnce(topology.node, 4) : [];
  const tapName = (await client.create("fn-a", functionDefinition())).network.value!.tapName;
  const [tap, ...others] = tapLinks(await ipLinks(topology.node));
  t.is(tap?.ifname, tapName);
  t.deepEqual(others, []);
  t.is(spares.some((spare) => spare.ifindex === tap?.ifindex), withSpares, withSpares ? "a former spare" : "made by the CREATE");
  return { topology, service, tapName };
}

test("by default only root may attach: an unprivileged VMM's TUNSETIFF is refused with EPERM", async (t) => {
  const { topology, tapName } = await createdTap(t, []);
  t.like(await attachAs(t, topology, tapName, NOBODY, NOBODY), { ok: false, code: "EPERM" });
});

test("--tap-owner: that user may attach to the TAP, taken from a spare; another user may not", async (t) => {
  const { topology, tapName } = await createdTap(t, ["--tap-owner", String(NOBODY)]);
  t.like(await attachAs(t, topology, tapName, STRANGER, NOBODY), { ok: false, code: "EPERM" });
  t.like(await attachAs(t, topology, tapName, NOBODY, NOBODY), { ok: true });
});

test("--tap-group: its members may attach to the TAP, made on the spot; with --tap-owner too, a VMM must be both", async (t) => {
  const group = await createdTap(t, ["--tap-group", String(NOBODY), "--spare-taps", "0"]);
  t.like(await attachAs(t, group.topology, group.tapName, STRANGER, STRANGER), { ok: false, code: "EPERM" });
  t.like(await attachAs(t, group.topology, group.tapName, STRANGER, NOBODY), { ok: true }, "any user of the group");

  const both = await createdTap(t, ["--tap-owner", String(NOBODY), "--tap-group", String(STRANGER)]);
  t.like(await attachAs(t, both.topology, both.tapName, NOBODY, NOBODY), { ok: false, code: "EPERM" }, "the owner, not in the group");
  t.like(await attachAs(t, both.topology, both.tapName, NOBODY, STRANGER), { ok: true });
});

test("a TAP that exists with another owner (an older version, a changed --tap-owner) gets the node's at the next start", async (t) => {
  const { topology, service, tapName } = await createdTap(t, []);
  t.like(await attachAs(t, topology, tapName, NOBODY, NOBODY), { ok: false, code: "EPERM" });

  await service.stop();
  const restarted = await startService({ nodeNs: topology.node, socketPath: service.socketPath, extraArgs: ["--tap-owner", String(NOBODY)], readyTimeoutMs: 60_000 });
  t.teardown(() => restarted.stop());
  const line = await restarted.waitForLog((entry) => entry.message === "reconciled" && entry["trigger"] === "start");
  t.like(line, { actions: { tap_owner_repaired: 1 } });
  t.like(await attachAs(t, topology, tapName, NOBODY, NOBODY), { ok: true });
});
