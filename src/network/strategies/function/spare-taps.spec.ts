import test from "ava";
import { rejected, scriptedNetlink } from "../../../../test/helpers/scripted-netlink.js";
import { createLogger } from "../../../logger.js";
import { KernelError } from "../../kernel/kernel-error.js";
import { isTapName, tapNameFor } from "../../model/instance-naming.js";
import { NetworkError } from "../../model/network-error.js";
import { Rtnetlink } from "../../kernel/rtnetlink/rtnetlink.js";
import { MAX_SPARE_TAPS } from "../../model/spare-count.js";
import { isSpareTapName, SpareTaps } from "./spare-taps.js";
import type { TapCreator } from "../../kernel/tap-creator.js";
import type { TapDeleter } from "../../kernel/tap-deleter.js";

test("spare names are rik-spare-N: at most 15 bytes, and never an instance TAP's name", (t) => {
  t.true(isSpareTapName("rik-spare-0"));
  t.true(isSpareTapName("rik-spare-99999"));
  t.is(Buffer.byteLength("rik-spare-99999"), 15);
  for (const name of ["rik-spare-", "rik-spare-100000", "rik-spare-x", "xrik-spare-1", "rik-spare-1 ", tapNameFor("fn-a")]) {
    t.false(isSpareTapName(name), name);
  }
  t.false(isTapName("rik-spare-1"), "reconcile never takes a spare for an orphaned instance TAP");
});

test("the count must be an integer from 0 to the maximum, before anything is made", (t) => {
  const options = { taps: {} as TapCreator, deleter: {} as TapDeleter, rtnetlink: {} as Rtnetlink, logger: createLogger("error") };
  for (const count of [-1, 1.5, MAX_SPARE_TAPS + 1, Number.NaN]) {
    const error = t.throws(() => new SpareTaps({ ...options, count }), { instanceOf: NetworkError });
    t.is(error?.code, "invalid-argument");
  }
  t.is(new SpareTaps({ ...options, count: 0 }).size, 0);
});

test("with no spare ready, take leaves the TAP to the caller and asks nothing of the kernel", async (t) => {
  const untouchable = new Proxy({}, { get: () => t.fail("the kernel was asked") }) as Rtnetlink;
  const spares = new SpareTaps({ count: 0, taps: {} as TapCreator, deleter: {} as TapDeleter, rtnetlink: untouchable, logger: createLogger("error") });
  t.false(await spares.take({ tapName: "rikaaaaaaaaaaaa", hostIp: "10.220.0.1", prefixLength: 30, mtu: 1500 }, true));
  await spares.close();
});

test("a spare that cannot be addressed once renamed fails the take with an error naming the TAP, not the link index", async (t) => {
  const RTM_NEWLINK = 16;
  const RTM_GETLINK = 18;
  const RTM_NEWADDR = 20;
  const link = Buffer.alloc(16);
  link.writeInt32LE(42, 4);
  const rtnetlink = Rtnetlink.open(() =>
    scriptedNetlink((type) => {
      if (type === RTM_GETLINK) return [{ type: RTM_NEWLINK, data: link }];
      if (type === RTM_NEWADDR) throw rejected("ENODEV");
      return [];
    }),
  );
  t.teardown(() => rtnetlink.close());
  const taps = { add: async () => ({ detached: Promise.resolve() }) } as unknown as TapCreator;
  const deleter = { delete: async () => undefined } as unknown as TapDeleter;
  const spares = new SpareTaps({ count: 1, taps, deleter, rtnetlink, logger: createLogger("error") });
  t.teardown(() => spares.close());
  spares.start([]);
  while (spares.size < 1) await new Promise((resolve) => setImmediate(resolve));
  const error = await t.throwsAsync(spares.take({ tapName: "rikaaaaaaaaaaaa", hostIp: "10.220.0.1", prefixLength: 30, mtu: 1500 }, true));
  t.is(error.message, "adding address 10.220.0.1/30 to link rikaaaaaaaaaaaa (index 42) failed: ENODEV (no such device)");
});

/** SpareTaps of `count` over fakes that record what they are asked; `reclaim` is what TapCreator.reclaim does. */
function adopting(count: number, options: { rename?: "fails"; reclaim?: () => Promise<void>; index?: number; hardwareType?: number } = {}) {
  const calls: string[] = [];
  const rtnetlink = {
    linkRename: async (index: number, name: string) => {
      calls.push(`rename ${index} to ${name}`);
      if (options.rename === "fails") throw new KernelError(`renaming link ${index}`, "EEXIST");
    },
    addrFlush: async (index: number) => (calls.push(`flush ${index}`), 0),
    linkIndex: async (name: string) => (calls.push(`look up ${name}`), options.index ?? 500),
    linkGet: async (index: number, { name }: { name: string }) => (calls.push(`read ${index}`), { index, name, kind: "tun", hardwareType: options.hardwareType ?? 1 }),
  } as unknown as Rtnetlink;
  const taps = {
    reclaim: async (name: string) => {
      calls.push(`reclaim ${name}`);
      await options.reclaim?.();
    },
    // A refill: what a spare missing after a failed adoption makes.
    add: async (name: string) => (calls.push(`make ${name}`), { detached: Promise.resolve() }),
  } as unknown as TapCreator;
  const deleter = { delete: async (name: string) => void calls.push(`delete ${name}`) } as unknown as TapDeleter;
  const spares = new SpareTaps({ count, taps, deleter, rtnetlink, logger: createLogger("error") });
  return { spares, calls };
}

test("a retired TAP nothing holds becomes a ready spare: renamed, its addresses flushed, reclaimed, and checked to be the same device", async (t) => {
  const { spares, calls } = adopting(1);
  t.true(spares.wantsMore());
  t.true(await spares.adopt(500, "rik-doom-dw"));
  t.deepEqual(calls, ["rename 500 to rik-spare-0", "flush 500", "reclaim rik-spare-0", "look up rik-spare-0", "read 500"]);
  t.is(spares.size, 1);
  t.false(spares.wantsMore(), "full");
  t.false(await spares.adopt(501, "rik-doom-dx"), "a full pool adopts nothing");
  await spares.close();
  t.deepEqual(calls.slice(5), ["delete rik-spare-0"], "close deletes the adopted spare too");
});

test("a retired TAP that is still held, or that reclaim made anew, is deleted under its spare name, never made a spare; one that cannot be renamed is left to the caller", async (t) => {
  const held = adopting(1, { reclaim: async () => Promise.reject(new KernelError("reclaiming TAP rik-spare-0 (TUNSETIFF)", "EBUSY")) });
  t.true(await held.spares.adopt(500, "rik-doom-dw"));
  t.deepEqual(held.calls, ["rename 500 to rik-spare-0", "flush 500", "reclaim rik-spare-0", "delete rik-spare-0"]);
  t.is(held.spares.size, 0);
  await held.spares.close();

  const replaced = adopting(1, { index: 777 });
  t.true(await replaced.spares.adopt(500, "rik-doom-dw"));
  t.deepEqual(replaced.calls.slice(-1), ["delete rik-spare-0"], "another device than the retired one");
  t.is(replaced.spares.size, 0);
  await replaced.spares.close();

  // Its last holder changed it before letting go: read again once reclaimed, it is refused.
  const changed = adopting(1, { hardwareType: 772 });
  t.true(await changed.spares.adopt(500, "rik-doom-dw", (link) => (link.hardwareType === 1 ? undefined : "not Ethernet")));
  t.deepEqual(changed.calls.slice(-2), ["read 500", "delete rik-spare-0"]);
  t.is(changed.spares.size, 0);
  await changed.spares.close();

  const unrenamed = adopting(1, { rename: "fails" });
  t.false(await unrenamed.spares.adopt(500, "rik-doom-dw"));
  t.deepEqual(unrenamed.calls, ["rename 500 to rik-spare-0"]);
  await unrenamed.spares.close();
});
