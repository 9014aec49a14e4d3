import test from "ava";
import { isKernelNotFound, KernelError } from "./kernel-error.js";
import { NetworkError } from "../model/network-error.js";
import { kernelError, type Rtnetlink } from "./rtnetlink/rtnetlink.js";
import { TapDeleter } from "./tap-deleter.js";

/** How the netlink package reports the kernel's refusal of a request. */
const rejected = (errno: string) => new Error(`Request rejected: ${errno}`);

test("a kernel object that is missing is a KernelError naming the operation and the errno, never the API's not-found", (t) => {
  for (const [errno, meaning] of [
    ["ENODEV", "no such device"],
    ["ESRCH", "no such object"],
    ["EADDRNOTAVAIL", "no such address"],
  ] as const) {
    const error = kernelError("deleting link rikabcdefghijkl", rejected(errno));
    t.true(error instanceof KernelError && error instanceof NetworkError);
    t.is(error.code, "internal", errno);
    t.is(error.errno, errno);
    t.is(error.message, `deleting link rikabcdefghijkl failed: ${errno} (${meaning})`);
    t.true(isKernelNotFound(error), errno);
  }
});

test("other kernel failures are KernelErrors that are not 'not found'", (t) => {
  const refused = kernelError("adding address 10.220.0.1/30 to link 7", rejected("EPERM"));
  t.is(refused.code, "internal");
  t.is(refused.errno, "EPERM");
  t.is(refused.message, "adding address 10.220.0.1/30 to link 7 failed: EPERM");
  t.false(isKernelNotFound(refused));
  const timedOut = kernelError("listing links", new Error("Timeout"));
  t.is(timedOut.errno, undefined);
  t.is(timedOut.message, "listing links failed: Timeout");
  t.false(isKernelNotFound(timedOut));
  t.false(isKernelNotFound(new NetworkError("not-found", "no instance \"x\" on this node")), "an instance's not-found is not the kernel's");
});

/** An rtnetlink whose links are `present`; deleting or regrouping another one fails as the kernel does. */
function fakeRtnetlink(present: Set<string>, calls: string[]): Rtnetlink {
  const missing = (operation: string, name: string) => {
    if (!present.has(name)) throw kernelError(`${operation} ${name}`, rejected("ENODEV"));
  };
  return {
    linkDel: async (name: string) => {
      calls.push(`del ${name}`);
      missing("deleting link", name);
      present.delete(name);
    },
    linkSetGroup: async (name: string) => {
      calls.push(`group ${name}`);
      missing("moving link", name);
    },
    linkDelGroup: async () => {
      calls.push("del group");
    },
  } as unknown as Rtnetlink;
}

test("TapDeleter tolerates TAPs that are already gone, alone or in a group", async (t) => {
  const calls: string[] = [];
  const deleter = new TapDeleter(fakeRtnetlink(new Set(["rik-a"]), calls));
  await t.notThrowsAsync(deleter.delete("rik-gone"));
  // The first runs alone (ENODEV on a link delete); the two that arrive meanwhile go as a group (ENODEV on a regroup).
  await t.notThrowsAsync(Promise.all([deleter.delete("rik-gone-too"), deleter.delete("rik-a"), deleter.delete("rik-gone-as-well")]));
  t.deepEqual(calls, ["del rik-gone", "del rik-gone-too", "group rik-a", "group rik-gone-as-well", "del group"]);
});

test("TapDeleter reports any other failure", async (t) => {
  const rtnetlink = {
    linkDel: async (name: string) => {
      throw kernelError(`deleting link ${name}`, rejected("EPERM"));
    },
  } as unknown as Rtnetlink;
  await t.throwsAsync(new TapDeleter(rtnetlink).delete("rik-a"), { message: "deleting link rik-a failed: EPERM" });
});
