/**
 * FunctionStrategy with its kernel collaborators, and the firewall (through its contract
 * only, whatever the backend), replaced by recording fakes: the parts of it that are decisions
 * (what identity means, the exposure limit, how a rollback runs). The kernel side is covered
 * by the integration tests under test/.
 */
import test from "ava";
import winston from "winston";
import type { Firewall, InstanceFirewall } from "../../firewall/firewall.js";
import type { Conntrack } from "../../kernel/conntrack.js";
import { FunctionStrategy } from "./function-strategy.js";
import { FunctionTaps } from "./function-taps.js";
import { HostPorts } from "../../node/host-ports.js";
import { NodeSetup } from "../../node/node-setup.js";
import { Ipv4Cidr } from "../../model/ipv4-cidr.js";
import { NetworkError } from "../../model/network-error.js";
import { PortPolicy } from "../../model/port-policy.js";
import { rollbackFailuresOf } from "../../support/rollback.js";
import type { Rtnetlink } from "../../kernel/rtnetlink/rtnetlink.js";
import type { SockDiag } from "../../kernel/sock-diag.js";
import type { SpareTaps } from "./spare-taps.js";
import type { TapCreator } from "../../kernel/tap-creator.js";
import type { TapDeleter } from "../../kernel/tap-deleter.js";
import { parseWorkloadDefinition, type WorkloadDefinition } from "../../model/workload-definition.js";

interface Exposure {
  readonly port: number;
  readonly targetPort: number;
  readonly protocol?: string;
  readonly hostIP?: string;
}

function definition(exposure: readonly Exposure[], more: { rootfs?: string; replicas?: number } = {}): WorkloadDefinition {
  return parseWorkloadDefinition(
    JSON.stringify({
      apiVersion: "v0",
      kind: "Function",
      name: "f",
      replicas: more.replicas ?? 1,
      spec: { function: { execution: { rootfs: more.rootfs ?? "r" }, exposure } },
    }),
  );
}

/** What the fakes were asked to do, in order. */
interface Fakes {
  readonly calls: string[];
  /** What the firewall's add and remove throw, when set. */
  readonly fail: { add?: Error; remove?: Error };
}

/** A Firewall that records what it is asked, and fails where told to. */
function recordingFirewall(fakes: Fakes): Firewall {
  const record = (verb: "add" | "remove") => async (instance: InstanceFirewall) => {
    fakes.calls.push(`${verb} the rules of ${instance.instanceId}`);
    const error = fakes.fail[verb];
    if (error !== undefined) throw error;
  };
  return {
    prefetch: () => void fakes.calls.push("prefetch"),
    add: record("add"),
    remove: record("remove"),
    removeAll: async () => ({}),
    reconcile: async () => {
      fakes.calls.push("reconcile");
      return {};
    },
    close: async () => void fakes.calls.push("close"),
  };
}

function strategy(overrides: { maxPortsPerInstance?: number } = {}): { functions: FunctionStrategy; node: NodeSetup; fakes: Fakes } {
  const fakes: Fakes = { calls: [], fail: {} };
  const spares = {
    size: 2,
    take: async (tap: { tapName: string }) => {
      fakes.calls.push(`take spare as ${tap.tapName}`);
      return true;
    },
  } as unknown as SpareTaps;
  const tapDeleter = {
    delete: async (name: string) => {
      fakes.calls.push(`delete TAP ${name}`);
    },
  } as unknown as TapDeleter;
  const sockDiag = {} as unknown as SockDiag;
  const rtnetlink = {} as unknown as Rtnetlink;
  const logger = winston.createLogger({ silent: true });
  const pool = Ipv4Cidr.parse("10.220.0.0/24");
  const conntrack = { delete: async () => undefined } as unknown as Conntrack;
  const node = new NodeSetup({ pool, mtu: 1500, rtnetlink, conntrack, logger });
  const portPolicy = new PortPolicy({ min: 1, max: 65535, reserved: [] });
  const functions = new FunctionStrategy({
    node,
    hostPorts: new HostPorts({ pool, localhost: true, portPolicy, rtnetlink, sockDiag, ...overrides }),
    firewall: recordingFirewall(fakes),
    taps: new FunctionTaps({ localhost: true, rtnetlink, taps: {} as unknown as TapCreator, spares, tapDeleter, logger }),
    spares,
    conntrack,
    logger,
  });
  return { functions, node, fakes };
}

test("a CREATE is the same instance when its exposure is the same set of ports, in any order, whatever else changed", (t) => {
  const { functions } = strategy();
  const ports: Exposure[] = [
    { port: 8080, targetPort: 80 },
    { port: 5353, targetPort: 53, protocol: "UDP" },
    { port: 9000, targetPort: 9000, hostIP: "192.0.2.10" },
  ];
  const network = functions.prepare("a", definition(ports));
  t.is(functions.differenceFrom(network, definition(ports)), undefined);
  t.is(functions.differenceFrom(network, definition([...ports].reverse(), { rootfs: "other", replicas: 3 })), undefined);
  t.is(functions.differenceFrom(network, definition([{ ...ports[0]!, protocol: "tcp" }, ports[1]!, ports[2]!])), undefined, "protocol in any case");
  for (const changed of [
    [{ port: 8081, targetPort: 80 }, ports[1]!, ports[2]!],
    [{ port: 8080, targetPort: 81 }, ports[1]!, ports[2]!],
    [{ port: 8080, targetPort: 80, protocol: "UDP" }, ports[1]!, ports[2]!],
    [ports[0]!, ports[1]!, { port: 9000, targetPort: 9000 }],
    [ports[0]!, ports[1]!],
    [...ports, { port: 7000, targetPort: 7000 }],
    [],
  ]) {
    t.is(functions.differenceFrom(network, definition(changed)), "another exposure", JSON.stringify(changed));
  }
});

test("more exposure entries than --max-ports-per-instance are refused before anything is reserved or asked of the kernel", async (t) => {
  const ports = (count: number) => Array.from({ length: count }, (_, i) => ({ port: 10_000 + i, targetPort: 80 }));
  const { functions, node, fakes } = strategy();
  const error = await t.throwsAsync(functions.admit("a", definition(ports(65))), { instanceOf: NetworkError });
  t.is(error.code, "invalid-argument");
  t.regex(error.message, /spec\.function\.exposure has 65 entries, more than the 64 an instance may have on this node \(--max-ports-per-instance\)/);
  t.deepEqual(fakes.calls, []);
  t.deepEqual([node.pool.capacity, node.pool.size], [64, 0]);
  const limited = strategy({ maxPortsPerInstance: 2 }).functions;
  await t.throwsAsync(limited.admit("a", definition(ports(3))), { message: /has 3 entries, more than the 2/ });
});

test("a rollback whose rule delete fails still deletes the TAP, and the CREATE fails with the first error", async (t) => {
  const { functions, fakes } = strategy();
  const network = functions.prepare("a", definition([{ port: 8080, targetPort: 80 }]));
  fakes.fail.add = new NetworkError("internal", "the firewall refused the add");
  fakes.fail.remove = new NetworkError("internal", "the firewall refused the remove");
  const error = await t.throwsAsync(functions.realize(network), { instanceOf: NetworkError });
  t.is(error.message, "the firewall refused the add", "the add's error, not the rollback's");
  t.deepEqual(
    rollbackFailuresOf(error).map(({ step, error: cause }) => [step, (cause as Error).message]),
    [["delete the rules", "the firewall refused the remove"]],
  );
  const tapName = network.kind === "Function" ? network.function.tapName : "";
  t.true(fakes.calls.includes(`delete TAP ${tapName}`), fakes.calls.join(", "));
});

test("the firewall gets an instance's guest address and ports; the strategy owns instance TAPs, spares and retired TAPs; its figures are its spares", (t) => {
  const { functions } = strategy();
  const network = functions.prepare("a", definition([{ port: 8080, targetPort: 80 }, { port: 5353, targetPort: 53, protocol: "UDP", hostIP: "192.0.2.10" }]));
  const fn = network.kind === "Function" ? network.function : undefined;
  t.deepEqual(functions.firewallOf(network), { instanceId: "a", guestIp: fn!.guestIp, ports: fn!.ports });
  t.true(functions.ownsLink(fn!.tapName));
  t.true(functions.ownsLink("rik-spare-7"));
  t.true(functions.ownsLink("rik-doom-dw"), "a retired TAP");
  t.false(functions.ownsLink("eth0"));
  t.false(functions.ownsLink("rik-v0123456789"), "a name of another kind's pattern");
  t.deepEqual(functions.stats(), { spare_taps: 2 });
});
