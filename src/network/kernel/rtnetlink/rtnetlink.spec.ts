import test from "ava";
import { rejected, type ScriptedMessage, scriptedNetlink } from "../../../../test/helpers/scripted-netlink.js";
import { KernelError } from "../kernel-error.js";
import { NetworkError } from "../../model/network-error.js";
import { addrDelFirstRequest, addrDelRequest, addrDump, addrReplaceRequest } from "./addr-codec.js";
import {
  linkDelGroupRequest,
  linkDelRequest,
  linkDump,
  linkGetByIndexRequest,
  linkGetRequest,
  linkRenameRequest,
  linkSetDownRequest,
  linkSetGroupRequest,
  linkSetUpRequest,
} from "./link-codec.js";
import { routeDump } from "./route-codec.js";
import { errnoOf, Rtnetlink } from "./rtnetlink.js";
import type { Request } from "./wire.js";

test("errno is read from netlink's message text", (t) => {
  t.is(errnoOf(new Error("Request rejected: ENODEV")), "ENODEV");
  t.is(errnoOf(new Error("something else")), undefined);
});

test("a kernel error on a link given by index names the link when the caller gave its name", async (t) => {
  const rtnetlink = Rtnetlink.open(() =>
    scriptedNetlink(() => {
      throw rejected("ENODEV");
    }),
  );
  t.teardown(() => rtnetlink.close());
  const failure = (call: Promise<void>) => t.throwsAsync(call, { instanceOf: KernelError });
  t.is((await failure(rtnetlink.addrReplace(42, "10.220.0.1", 30, { name: "rikaaaaaaaaaaaa" }))).message, "adding address 10.220.0.1/30 to link rikaaaaaaaaaaaa (index 42) failed: ENODEV (no such device)");
  t.is((await failure(rtnetlink.addrDel(42, "10.220.0.1", 30, { name: "rikaaaaaaaaaaaa" }))).message, "removing address 10.220.0.1/30 from link rikaaaaaaaaaaaa (index 42) failed: ENODEV (no such device)");
  t.is((await failure(rtnetlink.linkSetUp(42, { mtu: 1500, name: "rikaaaaaaaaaaaa" }))).message, "setting link rikaaaaaaaaaaaa (index 42) up failed: ENODEV (no such device)");
  t.is(
    (await failure(rtnetlink.linkSetUp(42, { rename: "rikaaaaaaaaaaaa", name: "rik-spare-7" }))).message,
    "renaming link rik-spare-7 (index 42) to rikaaaaaaaaaaaa and setting it up failed: ENODEV (no such device)",
  );
  t.is((await failure(rtnetlink.linkSetUp("rikaaaaaaaaaaaa"))).message, "setting link rikaaaaaaaaaaaa up failed: ENODEV (no such device)", "by name, the name");
  t.is((await failure(rtnetlink.addrReplace(42, "10.220.0.1", 30))).message, "adding address 10.220.0.1/30 to link 42 failed: ENODEV (no such device)", "the index, when that is all the caller has");
});

/** An Rtnetlink whose sockets record every request and answer it with `answer`. */
function recording(answer: (type: number) => readonly ScriptedMessage[] = () => []) {
  const sent: Request[] = [];
  const rtnetlink = Rtnetlink.open(() =>
    scriptedNetlink((type, { flags, payload }) => {
      sent.push({ type, flags, payload });
      return answer(type);
    }),
  );
  return { rtnetlink, sent };
}

/** struct ifinfomsg of link `index`, as an RTM_NEWLINK answer carries it. */
function newLink(index: number): ScriptedMessage {
  const data = Buffer.alloc(16);
  data.writeInt32LE(index, 4);
  return { type: 16, data };
}

test("each operation sends its codec's request, and nothing else", async (t) => {
  const { rtnetlink, sent } = recording((type) => (type === 18 ? [newLink(7)] : []));
  t.teardown(() => rtnetlink.close());
  const cases: [() => Promise<unknown>, Request][] = [
    [() => rtnetlink.linkIndex("rikt-a"), linkGetRequest("rikt-a")],
    [() => rtnetlink.linkSetUp("rikt-a", { mtu: 1400, routeLocalnet: true }), linkSetUpRequest({ name: "rikt-a" }, { mtu: 1400, routeLocalnet: true })],
    [() => rtnetlink.linkSetUp(3, { rename: "rikt-b", mtu: 1300, name: "rik-spare-1" }), linkSetUpRequest({ index: 3, rename: "rikt-b" }, { mtu: 1300 })],
    [() => rtnetlink.linkSetUp(3), linkSetUpRequest({ index: 3 })],
    [() => rtnetlink.linkGet(7, { name: "rikt-a" }), linkGetByIndexRequest(7)],
    [() => rtnetlink.linkSetDown(7, { name: "rikt-a" }), linkSetDownRequest(7)],
    [() => rtnetlink.linkSetDown(7, { rename: "rik-doom-7" }), linkSetDownRequest(7, "rik-doom-7")],
    [() => rtnetlink.linkRename(7, "rik-doom-7", { name: "rikt-a" }), linkRenameRequest(7, "rik-doom-7")],
    [() => rtnetlink.linkSetGroup("rikt-c", 7), linkSetGroupRequest("rikt-c", 7)],
    [() => rtnetlink.linkDel("rikt-c"), linkDelRequest("rikt-c")],
    [() => rtnetlink.linkDelGroup(7), linkDelGroupRequest(7)],
    [() => rtnetlink.addrReplace(42, "10.99.0.1", 30, { name: "rikt-a" }), addrReplaceRequest(42, "10.99.0.1", 30)],
    [() => rtnetlink.addrDel(42, "10.99.0.1", 30), addrDelRequest(42, "10.99.0.1", 30)],
    [() => rtnetlink.linkList(), linkDump().request],
    [() => rtnetlink.addrList(), addrDump().request],
    [() => rtnetlink.routeList(), routeDump().request],
  ];
  for (const [operation, expected] of cases) {
    sent.length = 0;
    await operation();
    t.deepEqual(sent, [expected], expected.payload.toString("hex"));
  }
});

test("a flush deletes the link's first address until the kernel says there is none left, and counts them", async (t) => {
  let left = 2;
  const { rtnetlink, sent } = recording(() => {
    if (left === 0) throw rejected("EADDRNOTAVAIL");
    left--;
    return [];
  });
  t.teardown(() => rtnetlink.close());
  t.is(await rtnetlink.addrFlush(42, { name: "rik-doom-16" }), 2);
  t.deepEqual(sent, [addrDelFirstRequest(42), addrDelFirstRequest(42), addrDelFirstRequest(42)]);
  t.is(await rtnetlink.addrFlush(42), 0, "none: one request");
});

test("a flush of a link that is gone fails with the kernel's ENODEV, naming the link", async (t) => {
  const { rtnetlink } = recording(() => {
    throw rejected("ENODEV");
  });
  t.teardown(() => rtnetlink.close());
  const error = await t.throwsAsync(rtnetlink.addrFlush(42, { name: "rik-doom-16" }), { instanceOf: KernelError });
  t.is(error?.message, "removing the IPv4 addresses of link rik-doom-16 (index 42) failed: ENODEV (no such device)");
});

test("a link by index is the answer's RTM_NEWLINK, parsed; an answer without one is ENODEV", async (t) => {
  const answers: (readonly ScriptedMessage[])[] = [[newLink(42)], []];
  const { rtnetlink } = recording(() => answers.shift() ?? []);
  t.teardown(() => rtnetlink.close());
  t.like(await rtnetlink.linkGet(42), { index: 42, up: false });
  const error = await t.throwsAsync(rtnetlink.linkGet(42, { name: "rik-doom-16" }), { instanceOf: KernelError });
  t.is(error?.message, "looking up link rik-doom-16 (index 42) failed: ENODEV (no such device)");
});

test("input the codec refuses is a NetworkError, and sends nothing", async (t) => {
  const { rtnetlink, sent } = recording();
  t.teardown(() => rtnetlink.close());
  const refused = async (call: Promise<unknown>) => (await t.throwsAsync(call, { instanceOf: NetworkError }))?.message;
  t.is(await refused(rtnetlink.addrReplace(42, "10.99.0", 30)), '"10.99.0" is not an IPv4 address');
  t.is(await refused(rtnetlink.addrDel(42, "::1", 30)), '"::1" is not an IPv4 address');
  t.is(await refused(rtnetlink.linkSetUp("rikt-a", { rename: "rikt-b" })), "renaming link rikt-a to rikt-b needs its index, not its name");
  t.deepEqual(sent, []);
});

test("the index is the answer's link; an answer without one is ENODEV", async (t) => {
  const answers: (readonly ScriptedMessage[])[] = [[{ type: 2, data: Buffer.alloc(20) }, newLink(42)], []];
  const { rtnetlink } = recording(() => answers.shift() ?? []);
  t.teardown(() => rtnetlink.close());
  t.is(await rtnetlink.linkIndex("rikt-a"), 42);
  const error = await t.throwsAsync(rtnetlink.linkIndex("rikt-a"), { instanceOf: KernelError });
  t.is(error?.message, "looking up link rikt-a failed: ENODEV (no such device)");
});

test("a dump decodes the messages of its answer type and skips the rest", async (t) => {
  const { rtnetlink } = recording(() => [newLink(1), { type: 20, data: Buffer.alloc(16) }, { type: 16, data: Buffer.alloc(15) }, newLink(2)]);
  t.teardown(() => rtnetlink.close());
  t.deepEqual(
    (await rtnetlink.linkList()).map((link) => link.index),
    [1, 2],
  );
});
