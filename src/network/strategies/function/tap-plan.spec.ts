/** What a reconcile plans for the Function strategy's TAPs, given the links the kernel shows. */
import test from "ava";
import type { AddressInfo, LinkInfo } from "../../kernel/rtnetlink/rtnetlink.js";
import { planTaps, tapActions, type ObservedLinks } from "./tap-plan.js";

const tapA = { tapName: "rikaaaaaaaaaaaa", hostIp: "10.220.0.1", prefixLength: 30, mtu: 1500 };
const tapB = { tapName: "rikbbbbbbbbbbbb", hostIp: "10.220.0.5", prefixLength: 30, mtu: 1500 };
const taps = [tapA, tapB];

const link = (index: number, name: string, extra: Partial<LinkInfo> = {}): LinkInfo => ({ index, name, kind: "tun", up: true, mtu: 1500, routeLocalnet: true, ipv6: undefined, ...extra });
const address = (index: number, a: string): AddressInfo => ({ index, address: a, prefixLength: 30 });
const healthy: ObservedLinks = {
  links: [link(1, "lo", { kind: undefined }), link(2, tapA.tapName), link(3, tapB.tapName)],
  addresses: [address(2, "10.220.0.1"), address(3, "10.220.0.5")],
};

test("a kernel that matches needs nothing", (t) => {
  t.deepEqual(tapActions(planTaps(taps, healthy)), {});
});

test("an empty node gets its TAPs created", (t) => {
  const plan = planTaps(taps, { links: [], addresses: [] });
  t.deepEqual(plan.createTaps, [tapA, tapB]);
  t.deepEqual(tapActions(plan), { tap_created: 2 });
});

test("a deleted TAP is re-created; a TAP that lost its address or went down is repaired", (t) => {
  const plan = planTaps(taps, { links: [link(3, tapB.tapName, { up: false })], addresses: [] });
  t.deepEqual(plan.createTaps, [tapA]);
  t.deepEqual(plan.repairTaps, [{ tap: tapB, index: 3, addAddress: true, setUp: true }]);
});

test("what no instance owns is removed: our TAPs and stray addresses on them", (t) => {
  const plan = planTaps(taps, {
    links: [...healthy.links, link(4, "rikgggggggggggg"), link(5, "rikgggggggggggg0", { kind: "veth" }), link(6, "eth0", { kind: undefined })],
    addresses: [...healthy.addresses, address(2, "10.220.0.9")],
  });
  t.deepEqual(plan.deleteTaps, ["rikgggggggggggg"]);
  t.deepEqual(plan.removeAddresses, [address(2, "10.220.0.9")]);
  t.deepEqual(tapActions(plan), { address_removed: 1, tap_removed: 1 });
});

test("retired TAPs (doomed names) are deleted, but those whose deletion is under way, and devices of another kind", (t) => {
  const plan = planTaps(taps, {
    ...healthy,
    links: [...healthy.links, link(7, "rik-doom-7", { up: false }), link(8, "rik-doom-8", { up: false }), link(9, "rik-doom-9", { kind: "veth" }), link(10, "rik-spare-3", { up: false })],
  }, (name) => name === "rik-doom-8");
  t.deepEqual(plan.deleteDoomedTaps, ["rik-doom-7"]);
  t.deepEqual(plan.deleteTaps, []);
  t.deepEqual(tapActions(plan), { doomed_tap_removed: 1 });
  t.deepEqual(planTaps(taps, { ...healthy, links: [...healthy.links, link(8, "rik-doom-8")] }).deleteDoomedTaps, ["rik-doom-8"], "at start, none is under way");
});

test("a device with our name that is not a TAP is replaced by one", (t) => {
  const plan = planTaps(taps, { ...healthy, links: [link(2, tapA.tapName, { kind: "veth" }), link(3, tapB.tapName)] });
  t.deepEqual(plan.createTaps, [tapA]);
});
