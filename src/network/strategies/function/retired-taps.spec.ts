/**
 * Retired TAPs: their names, when one may become a spare, and what a DESTROY's retirement
 * asks of the kernel, in order, and does when a step fails, against recording fakes. The
 * kernel's side (the TAP name gone when the DESTROY answers, recycling, a held TAP) is
 * covered by test/fast-destroy.test.ts.
 */
import test from "ava";
import winston from "winston";
import { KernelError } from "../../kernel/kernel-error.js";
import type { LinkInfo, Rtnetlink } from "../../kernel/rtnetlink/rtnetlink.js";
import type { TapDeleter } from "../../kernel/tap-deleter.js";
import { isTapName, tapNameFor } from "../../model/instance-naming.js";
import { rollbackFailuresOf } from "../../support/rollback.js";
import { doomedTapName, isDoomedTapName, recycleRefusal, RetiredTaps } from "./retired-taps.js";
import { isSpareTapName, type SpareTaps } from "./spare-taps.js";

test("a retired TAP is rik-doom- and its index in base 36: at most 15 bytes, never an instance TAP's or a spare's name, within the firewall's rik+", (t) => {
  t.is(doomedTapName(7), "rik-doom-7");
  t.is(doomedTapName(500), "rik-doom-dw");
  const largest = doomedTapName(2 ** 31 - 1);
  t.is(largest, "rik-doom-zik0zj");
  t.is(Buffer.byteLength(largest), 15);
  for (const name of ["rik-doom-7", "rik-doom-dw", largest]) {
    t.true(isDoomedTapName(name), name);
    t.false(isTapName(name), `${name} is no instance's TAP`);
    t.false(isSpareTapName(name), `${name} is no spare`);
    t.true(name.startsWith("rik"), `${name} matches rik+`);
  }
  for (const name of ["rik-doom-", "rik-doom-zik0zj0", "rik-doom-A1", "rik-doom-1 ", "xrik-doom-1", "rik-spare-1", tapNameFor("fn-a")]) {
    t.false(isDoomedTapName(name), name);
  }
});

/** A retired TAP as the link lookup after its rename shows it, when nothing holds it. */
const retired: LinkInfo = {
  index: 500,
  name: "rik-doom-dw",
  kind: "tun",
  tunOwner: 0,
  hardwareType: 1,
  up: false,
  carrier: false,
  mtu: 1500,
  routeLocalnet: true,
  ipv6: { disabled: true, acceptRa: 0, addrGenMode: 1 },
};
const expected = { name: "rik-doom-dw", owner: 0, group: undefined };

test("a retired TAP may become a spare only as a new TAP would be: down, carrier off, Ethernet, the node's owner and group, no IPv6", (t) => {
  t.is(recycleRefusal(retired, expected), undefined);
  t.is(recycleRefusal({ ...retired, ipv6: undefined }, expected), undefined, "a kernel without IPv6");
  t.is(recycleRefusal({ ...retired, tunOwner: undefined, tunGroup: 100 }, { ...expected, owner: undefined, group: 100 }), undefined);
  const refusals: [Partial<LinkInfo>, RegExp][] = [
    [{ carrier: true }, /carrier is on: something holds it/],
    [{ carrier: undefined }, /carrier is on/],
    [{ name: "eth1" }, /renamed to eth1 meanwhile/],
    [{ kind: "veth" }, /a veth device, not a TAP/],
    [{ up: true }, /brought up again/],
    [{ hardwareType: 65534 }, /link type 65534, not Ethernet/],
    [{ tunOwner: 1000 }, /owner 1000 and group none, not the node's 0 and none/],
    [{ tunGroup: 100 }, /owner 0 and group 100/],
    [{ ipv6: { disabled: false, acceptRa: 0, addrGenMode: 1 } }, /IPv6 turned back on/],
  ];
  for (const [change, reason] of refusals) t.regex(recycleRefusal({ ...retired, ...change }, expected) ?? "", reason, JSON.stringify(change));
});

const tap = { tapName: "rikaaaaaaaaaaaa", hostIp: "10.220.0.1", prefixLength: 30, mtu: 1500 };

interface Script {
  /** The errno each step fails with, by the step's name as recorded. */
  readonly fail?: Readonly<Record<string, string>>;
  /** What SpareTaps says. */
  readonly spares?: { readonly wanted: boolean; readonly adopts: boolean };
  /** Resolves the background deletions, when given: until then they are pending. */
  readonly deletions?: Promise<void>;
}

/** RetiredTaps over fakes that record, in order, what they are asked. */
function retiredTaps(script: Script = {}) {
  const calls: string[] = [];
  const step = async (name: string) => {
    calls.push(name);
    const errno = script.fail?.[name];
    if (errno !== undefined) throw new KernelError(name, errno);
  };
  const rtnetlink = {
    linkIndex: async (name: string) => (await step(`look up ${name}`), 500),
    linkSetDown: (index: number) => step(`set ${index} down`),
    addrDel: (index: number, address: string) => step(`remove ${address} from ${index}`),
    linkRename: (index: number, name: string) => step(`rename ${index} to ${name}`),
    linkGet: async (index: number) => (await step(`get ${index}`), retired),
  } as unknown as Rtnetlink;
  const deleter = {
    delete: async (name: string) => {
      await step(`delete ${name}`);
      await script.deletions;
      calls.push(`deleted ${name}`);
    },
  } as unknown as TapDeleter;
  const spares = {
    wantsMore: () => script.spares?.wanted ?? false,
    adopt: async (index: number, name: string) => (calls.push(`adopt ${index} as ${name}`), script.spares?.adopts ?? false),
  } as unknown as SpareTaps;
  const logger = winston.createLogger({ silent: true });
  return { retired: new RetiredTaps({ rtnetlink, spares, deleter, ownership: { owner: 0, group: undefined }, logger }), calls };
}

const RETIRE = ["look up rikaaaaaaaaaaaa", "set 500 down", "remove 10.220.0.1 from 500", "rename 500 to rik-doom-dw"];

test("a DESTROY's retirement: the index, then down, address removed and renamed; it answers before the TAP is deleted, and close waits for that", async (t) => {
  let deleted!: () => void;
  const { retired: taps, calls } = retiredTaps({ deletions: new Promise((resolve) => (deleted = resolve)) });
  await taps.retire(tap, { instanceId: "a" });
  t.deepEqual(calls, [...RETIRE, "delete rik-doom-dw"], "no spare wanted: straight to the deleter");
  t.true(taps.isSettling("rik-doom-dw"), "reconcile leaves it to the deletion under way");
  let closed = false;
  const closing = taps.close().then(() => (closed = true));
  await new Promise((resolve) => setImmediate(resolve));
  t.false(closed, "close waits for the deletion");
  deleted();
  await closing;
  t.deepEqual(calls.slice(-1), ["deleted rik-doom-dw"]);
  t.false(taps.isSettling("rik-doom-dw"));
});

test("with a spare wanted, a retired TAP that looks like a new one is offered to the spares; one they do not take is deleted", async (t) => {
  for (const adopts of [true, false]) {
    const { retired: taps, calls } = retiredTaps({ spares: { wanted: true, adopts } });
    await taps.retire(tap, { instanceId: "a" });
    await taps.close();
    t.deepEqual(calls, [...RETIRE, "get 500", "adopt 500 as rik-doom-dw", ...(adopts ? [] : ["delete rik-doom-dw", "deleted rik-doom-dw"])], `adopts: ${adopts}`);
  }
});

test("a TAP already gone, or without its address any more, is no failure", async (t) => {
  const gone = retiredTaps({ fail: { "look up rikaaaaaaaaaaaa": "ENODEV" } });
  await gone.retired.retire(tap, { instanceId: "a" });
  t.deepEqual(gone.calls, ["look up rikaaaaaaaaaaaa"]);
  const vanishing = retiredTaps({ fail: { "set 500 down": "ENODEV", "remove 10.220.0.1 from 500": "ENODEV", "rename 500 to rik-doom-dw": "ENODEV" } });
  await vanishing.retired.retire(tap, { instanceId: "a" });
  t.deepEqual(vanishing.calls, RETIRE, "gone between the lookup and the rest: nothing to delete");
  const addressless = retiredTaps({ fail: { "remove 10.220.0.1 from 500": "EADDRNOTAVAIL" } });
  await addressless.retired.retire(tap, { instanceId: "a" });
  await addressless.retired.close();
  t.deepEqual(addressless.calls, [...RETIRE, "delete rik-doom-dw", "deleted rik-doom-dw"]);
});

test("a retirement that fails half way deletes the TAP under the name it then bears, at once, and the DESTROY goes on", async (t) => {
  const notRenamed = retiredTaps({ fail: { "rename 500 to rik-doom-dw": "EEXIST" } });
  await notRenamed.retired.retire(tap, { instanceId: "a" });
  t.deepEqual(notRenamed.calls, [...RETIRE, "delete rikaaaaaaaaaaaa", "deleted rikaaaaaaaaaaaa"]);
  t.false(notRenamed.retired.isSettling("rik-doom-dw"));
  const renamed = retiredTaps({ fail: { "set 500 down": "EPERM" } });
  await renamed.retired.retire(tap, { instanceId: "a" });
  t.deepEqual(renamed.calls, [...RETIRE, "delete rik-doom-dw", "deleted rik-doom-dw"], "a kernel that renames links that are up renamed it");
  const unknown = retiredTaps({ fail: { "look up rikaaaaaaaaaaaa": "ENOBUFS" } });
  await unknown.retired.retire(tap, { instanceId: "a" });
  t.deepEqual(unknown.calls, ["look up rikaaaaaaaaaaaa", "delete rikaaaaaaaaaaaa", "deleted rikaaaaaaaaaaaa"]);
});

test("when the delete that replaces a failed retirement fails too, the first error is thrown, with the delete's attached", async (t) => {
  const { retired: taps } = retiredTaps({ fail: { "rename 500 to rik-doom-dw": "EEXIST", "delete rikaaaaaaaaaaaa": "EPERM" } });
  const error = await t.throwsAsync(taps.retire(tap, { instanceId: "a" }), { instanceOf: KernelError });
  t.is(error.errno, "EEXIST");
  t.deepEqual(
    rollbackFailuresOf(error).map(({ step, error: cause }) => [step, (cause as KernelError).errno]),
    [["delete TAP rikaaaaaaaaaaaa", "EPERM"]],
  );
});
