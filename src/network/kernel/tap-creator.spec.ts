import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import test, { type ExecutionContext } from "ava";
import { NetworkError } from "../model/network-error.js";
import { TAP_IPV6_SYSCTLS, TapCreator } from "./tap-creator.js";

test("a name longer than IFNAMSIZ is refused before anything is asked of the kernel", async (t) => {
  const taps = new TapCreator();
  t.teardown(() => taps.close());
  const error = await t.throwsAsync(taps.add("rik-name-far-too-long"), { instanceOf: NetworkError });
  t.is(error!.code, "invalid-argument");
});

test("after close, creations are refused as unavailable", async (t) => {
  const taps = new TapCreator();
  await taps.close();
  t.is((await t.throwsAsync(taps.add("rikx"), { instanceOf: NetworkError }))!.code, "unavailable");
});

for (const [what, options] of [
  ["a negative owner", { owner: -1 }],
  ["a fractional group", { group: 1.5 }],
  ["(u32)-1, the kernel's none", { owner: 0xffffffff }],
] as const) {
  test(`${what} is refused when the TapCreator is made`, (t) => {
    t.is(t.throws(() => new TapCreator(options), { instanceOf: NetworkError })!.code, "invalid-argument");
  });
}

test("owner 0 and the largest valid id are accepted", async (t) => {
  await t.notThrowsAsync(new TapCreator({ owner: 0, group: 0xfffffffe }).close());
});

interface Outcome {
  readonly name: string;
  readonly ok: boolean;
  readonly code?: string;
  readonly errno?: string;
  readonly message?: string;
  /** After a reclaim: the TAP's virtio_net_hdr settings. */
  readonly vnetHdrSize?: number;
  readonly vnetLe?: boolean;
}

/** A throwaway namespace, deleted with the test. */
function namespace(t: ExecutionContext): string {
  const ns = `riktc-${randomBytes(4).toString("hex")}`;
  execFileSync("ip", ["netns", "add", ns]);
  t.teardown(() => execFileSync("ip", ["netns", "del", ns]));
  return ns;
}

/**
 * Runs test/fixtures/tap-creator-run.ts in `ns`, through `wrapper` (a command that execs
 * the rest of its arguments) when given: one TapCreator making `names` at once.
 */
function createTaps(ns: string, names: readonly string[], options: { args?: string[]; wrapper?: string[] } = {}): Outcome[] {
  const node = [process.execPath, "--import=tsx", "test/fixtures/tap-creator-run.ts", ...(options.args ?? []), ...names];
  const output = execFileSync("ip", ["netns", "exec", ns, ...(options.wrapper ?? []), ...node], { encoding: "utf8", timeout: 30_000 });
  return output.trim().split("\n").map((line) => JSON.parse(line) as Outcome);
}

function inNs(ns: string, command: string, args: string[]): string {
  return execFileSync("ip", ["netns", "exec", ns, command, ...args], { encoding: "utf8" }).trim();
}

interface TunLink {
  readonly ifname: string;
  readonly linkinfo?: { readonly info_data?: { type?: string; pi?: boolean; vnet_hdr?: boolean; persist?: boolean } };
}

function links(ns: string): TunLink[] {
  return JSON.parse(execFileSync("ip", ["-n", ns, "-d", "-j", "link", "show"], { encoding: "utf8" })) as TunLink[];
}

function ipv6Sysctls(ns: string, name: string): Record<string, string> {
  return Object.fromEntries(Object.keys(TAP_IPV6_SYSCTLS).map((key) => [key, inNs(ns, "cat", [`/proc/sys/net/ipv6/conf/${name}/${key}`])]));
}

/** The TAP's owner and group as sysfs shows them; -1 is none. */
function ownerAndGroup(ns: string, name: string): { owner: string; group: string } {
  return { owner: inNs(ns, "cat", [`/sys/class/net/${name}/owner`]), group: inNs(ns, "cat", [`/sys/class/net/${name}/group`]) };
}

// Network namespaces need root; without it these are reported as skipped, never as passed.
const asRoot = process.getuid?.() === 0 ? test : test.skip;

asRoot("concurrent creations: every TAP is persistent with Firecracker's flags, without IPv6, and detached; a clash keeps its code", (t) => {
  const ns = namespace(t);
  // A device that is not a TAP under a name we ask for: TUNSETIFF refuses it.
  execFileSync("ip", ["-n", ns, "link", "add", "riktaken", "type", "veth", "peer", "name", "riktaken-peer"]);
  const names = Array.from({ length: 8 }, (_, i) => `riktc${i}`);
  const results = createTaps(ns, [...names, "riktaken"]);
  t.deepEqual(results.filter((r) => r.ok).map((r) => r.name), names);
  const clash = results.find((r) => r.name === "riktaken");
  t.like(clash, { ok: false, code: "internal" });
  t.regex(clash?.message ?? "", /creating TAP riktaken failed with EINVAL in TUNSETIFF: a device named riktaken that is not a matching TAP already exists/);
  const made = links(ns);
  for (const name of names) {
    t.like(made.find((link) => link.ifname === name)?.linkinfo?.info_data, { type: "tap", pi: false, vnet_hdr: true, persist: true }, name);
    t.deepEqual(ipv6Sysctls(ns, name), { disable_ipv6: "1", accept_ra: "0", addr_gen_mode: "1" }, name);
    // Without an owner or a group, anyone who can open /dev/net/tun could attach: root owns it.
    t.deepEqual(ownerAndGroup(ns, name), { owner: "0", group: "-1" }, `${name}: root's only`);
  }
  // Brought up, a TAP made so gets no IPv6 address, not even a link-local one.
  execFileSync("ip", ["-n", ns, "link", "set", "riktc0", "up"]);
  t.deepEqual(JSON.parse(execFileSync("ip", ["-n", ns, "-j", "-6", "addr", "show", "dev", "riktc0"], { encoding: "utf8" })), []);
});

asRoot("with an owner and a group, every TAP gets them, an existing TAP re-attached by TUNSETIFF too; a group alone leaves no owner", (t) => {
  const ns = namespace(t);
  execFileSync("ip", ["-n", ns, "tuntap", "add", "dev", "riktold", "mode", "tap", "vnet_hdr"]);
  t.deepEqual(ownerAndGroup(ns, "riktold"), { owner: "-1", group: "-1" }, "as ip tuntap leaves it");
  const results = createTaps(ns, ["riktnew", "riktold"], { args: ["--owner", "65534", "--group", "100"] });
  t.true(results.every((r) => r.ok), JSON.stringify(results));
  for (const name of ["riktnew", "riktold"]) {
    t.deepEqual(ownerAndGroup(ns, name), { owner: "65534", group: "100" }, name);
    t.deepEqual(ipv6Sysctls(ns, name), { disable_ipv6: "1", accept_ra: "0", addr_gen_mode: "1" }, name);
  }
  t.true(createTaps(ns, ["riktgroup"], { args: ["--group", "100"] })[0]?.ok);
  t.deepEqual(ownerAndGroup(ns, "riktgroup"), { owner: "-1", group: "100" });
});

asRoot("on a node without IPv6 (no /proc/sys/net/ipv6) the sysctls are skipped; any other failure to set them fails the creation and leaves no TAP", (t) => {
  const ns = namespace(t);
  // A private mount namespace that hides the whole net sysctl tree: to the worker, this kernel has no IPv6.
  const results = createTaps(ns, ["riktnov6"], { wrapper: ["unshare", "--mount", "sh", "-c", 'mount -t tmpfs none /proc/sys/net && exec "$@"', "sh"] });
  t.deepEqual(results, [{ name: "riktnov6", ok: true }]);
  t.true(links(ns).some((link) => link.ifname === "riktnov6"));

  // /proc/sys/net/ipv6 is there but the TAP's conf directory cannot be written (hidden here): the creation fails.
  const failed = createTaps(ns, ["riktbroken"], { wrapper: ["unshare", "--mount", "sh", "-c", 'mount -t tmpfs none /proc/sys/net/ipv6/conf && exec "$@"', "sh"] });
  t.like(failed[0], { name: "riktbroken", ok: false, code: "internal" });
  t.regex(failed[0]?.message ?? "", /creating TAP riktbroken failed: turning IPv6 off on it: ENOENT.*\/proc\/sys\/net\/ipv6\/conf\/riktbroken\/disable_ipv6/);
  t.false(links(ns).some((link) => link.ifname === "riktbroken"), "not made persistent, so gone with the worker's descriptor");
});

asRoot("reclaim refuses a TAP that a descriptor holds (EBUSY), and gives one nothing holds the settings of a new TAP", (t) => {
  const ns = namespace(t);
  for (const name of ["riktheld", "riktfree"]) execFileSync("ip", ["-n", ns, "tuntap", "add", "dev", name, "mode", "tap", "vnet_hdr"]);
  const results = createTaps(ns, ["riktheld", "riktfree"], { args: ["--reclaim", "--hold", "riktheld", "--dirty", "riktfree", "--owner", "65534"] });
  const held = results.find((r) => r.name === "riktheld");
  t.like(held, { ok: false, code: "internal", errno: "EBUSY" });
  t.regex(held?.message ?? "", /^reclaiming TAP riktheld \(TUNSETIFF\) failed: EBUSY/);
  t.deepEqual(ownerAndGroup(ns, "riktheld"), { owner: "-1", group: "-1" }, "a held TAP is left as it is");
  // sizeof(struct virtio_net_hdr) and the host's order, as a new TAP has them; the dirty holder had set 12.
  t.like(results.find((r) => r.name === "riktfree"), { ok: true, vnetHdrSize: 10, vnetLe: false });
  t.deepEqual(ownerAndGroup(ns, "riktfree"), { owner: "65534", group: "-1" }, "and the node's owner");
  t.like(links(ns).find((link) => link.ifname === "riktfree")?.linkinfo?.info_data, { type: "tap", pi: false, vnet_hdr: true, persist: true });
  t.deepEqual(ipv6Sysctls(ns, "riktfree"), { disable_ipv6: "1", accept_ra: "0", addr_gen_mode: "1" });
});
