/**
 * Makes a guest send what it addresses to 127.0.0.1 out of its NIC to its gateway, as a
 * hostile guest kernel could. With `route_localnet=1` on the node's side of the link (which
 * the service sets on TAPs for localhost exposure), such a datagram would be delivered to
 * the node's loopback-only sockets; this is what lets a test check that the node drops it.
 */
import { execIn } from "./netns.js";

/** In `guestNs`: 127.0.0.0/8 stops being local and 127.0.0.1 goes via `gateway` on `nic`. */
export async function routeLoopbackViaGateway(guestNs: string, gateway: string, nic = "eth0"): Promise<void> {
  // Without route_localnet the guest kernel refuses to route a loopback destination out of a NIC.
  await execIn(guestNs, "sysctl", ["-q", "-w", `net.ipv4.conf.${nic}.route_localnet=1`]);
  await execIn(guestNs, "ip", ["route", "del", "local", "127.0.0.1", "dev", "lo", "table", "local"]);
  await execIn(guestNs, "ip", ["route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"]);
  await execIn(guestNs, "ip", ["route", "add", "127.0.0.1/32", "via", gateway, "dev", nic]);
}
