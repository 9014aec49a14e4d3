/**
 * A TAP made by hand the way the service makes one, and a guest behind it: for tests of the
 * test harness itself, which must not depend on the service they are used to test.
 */
import { startGuest, type Guest } from "./guest-relay.js";
import { execIn } from "./netns.js";

/** Equivalent to what the service does for one instance, with `ip`. */
export async function createTap(ns: string, name: string, hostCidr: string): Promise<void> {
  await execIn(ns, "ip", ["tuntap", "add", "dev", name, "mode", "tap", "vnet_hdr"]);
  await execIn(ns, "ip", ["addr", "add", hostCidr, "dev", name]);
  await execIn(ns, "ip", ["link", "set", name, "up"]);
}

/** TAP `tapName` with 10.220.0.1/30 in `nodeNs`, and a guest 10.220.0.2 attached to it. */
export async function handMadeGuest(nodeNs: string, tapName: string): Promise<Guest> {
  await createTap(nodeNs, tapName, "10.220.0.1/30");
  return startGuest({
    nodeNs,
    tapName,
    guestIp: "10.220.0.2",
    hostIp: "10.220.0.1",
    prefixLength: 30,
    guestMac: "02:00:00:00:00:02",
    mtu: 1500,
  });
}
