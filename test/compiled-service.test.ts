/**
 * The service as `npm start` and the systemd unit run it: dist/ (built here when missing or
 * stale), not the sources under tsx. What differs there is how TapCreator's worker thread
 * finds its ioctls (dist/network/tun-ioctl.mjs, which the build must emit), so a CREATE makes
 * its TAP, spare or not, and the TAP has IPv6 off.
 */
import test from "ava";
import { ensureBuilt } from "../bench/compiled-service.js";
import { ipLinks, spareTapLinks, tapIpv6, tapLinks, WITHOUT_IPV6 } from "./helpers/kernel-state.js";
import { startNode } from "./helpers/start-node.js";
import { functionDefinition } from "./helpers/workload-client.js";

test("the compiled service makes a CREATE's TAP in its worker thread, with IPv6 off", async (t) => {
  await ensureBuilt((line) => t.log(line));
  const { topology, client } = await startNode(t, { service: { compiled: true, extraArgs: ["--spare-taps", "0"] } });
  const onTheSpot = (await client.create("fn-a", functionDefinition())).network.value!.tapName;
  t.deepEqual(tapLinks(await ipLinks(topology.node)).map((link) => link.ifname), [onTheSpot]);
  t.deepEqual(await tapIpv6(topology.node, onTheSpot), WITHOUT_IPV6);
  t.deepEqual(spareTapLinks(await ipLinks(topology.node)), []);
});
