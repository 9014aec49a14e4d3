/**
 * `startGuest` fed with what a CREATE answered, as a VMM would be: the guest's NIC gets the
 * TAP, MAC, addresses and MTU of the reply and nothing else.
 */
import type { InstanceNetwork } from "../../src/gen/rik/network/v1/workload_network_pb.js";
import { startGuest, type Guest } from "./guest-relay.js";

/** Attaches a guest to the TAP of `network` (a Function's CREATE reply) in `nodeNs`. */
export function attachGuest(nodeNs: string, network: InstanceNetwork): Promise<Guest> {
  if (network.network.case !== "function") throw new Error(`${network.instanceId} is not a Function network`);
  const fn = network.network.value;
  return startGuest({
    nodeNs,
    tapName: fn.tapName,
    guestIp: fn.guestIp,
    hostIp: fn.hostIp,
    prefixLength: fn.prefixLength,
    guestMac: fn.guestMac,
    mtu: fn.mtu,
  });
}
