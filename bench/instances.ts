/**
 * The instances a benchmark creates: ids, host ports, and (for the baseline, which has no
 * allocator of its own) TAP names and /30 addresses. rik-network picks its own TAP names
 * and addresses; the baseline gets the same TAP names (same naming function) and /30s laid
 * out the way rik-network's pool lays them out, lowest slot first.
 */
import { tapNameFor } from "../src/network/model/instance-naming.js";
import { formatIpv4, Ipv4Cidr } from "../src/network/model/ipv4-cidr.js";
import { functionDefinition } from "../test/helpers/workload-client.js";

export interface BenchInstance {
  readonly id: string;
  readonly tapName: string;
  /** Host side of the /30, the guest's gateway. */
  readonly hostIp: string;
  readonly guestIp: string;
  /** The pool the /30 comes from, as a CIDR. */
  readonly pool: string;
  /** Node port exposed with a DNAT rule; unique per instance. */
  readonly hostPort: number;
  readonly guestPort: number;
}

/** Guest port of every exposure: what the function listens on. */
const GUEST_PORT = 8080;

/**
 * Host ports: fill instances take 10000 + i, measured ones (warm-up, sequential, concurrent)
 * take ports from 1024 up, so that at most 55535 instances fit; far more than we create. The
 * churn's cycles take 9000 + their slot (a slot's port is free again once its DESTROY is
 * answered), and the data path's instance the port after the fill's last.
 */
const FILL_FIRST_PORT = 10_000;
const CHURN_FIRST_PORT = 9000;
const MEASURED_FIRST_PORT = 1024;

/** Slots of the churn, each with a host port of its own. */
export const MAX_CHURN_IN_FLIGHT = 64;

export interface InstanceGroup {
  /** Instance id prefix, e.g. "fill" gives fill-0, fill-1, ... */
  readonly prefix: string;
  readonly count: number;
  /** Pool slot (/30 index) of the first instance. */
  readonly firstSlot: number;
  readonly firstHostPort: number;
}

/** Instance `id` in pool slot (/30 index) `slot`, exposed on `hostPort`. */
function instanceAt(cidr: Ipv4Cidr, id: string, slot: number, hostPort: number): BenchInstance {
  const slotBase = cidr.network + 4 * slot;
  return {
    id,
    tapName: tapNameFor(id),
    hostIp: formatIpv4(slotBase + 1),
    guestIp: formatIpv4(slotBase + 2),
    pool: cidr.toString(),
    hostPort,
    guestPort: GUEST_PORT,
  };
}

export function makeInstances(pool: string, group: InstanceGroup): BenchInstance[] {
  const cidr = Ipv4Cidr.parse(pool);
  return Array.from({ length: group.count }, (_, i) => instanceAt(cidr, `${group.prefix}-${i}`, group.firstSlot + i, group.firstHostPort + i));
}

/** Every group of one measured size: fill, warm-up, sequential samples, the concurrent batch. */
export interface InstancePlan {
  readonly fill: BenchInstance[];
  readonly warmup: BenchInstance[];
  readonly sequential: BenchInstance[];
  readonly concurrent: BenchInstance[];
}

export interface PlanOptions {
  readonly pool: string;
  readonly size: number;
  readonly warmup: number;
  readonly samples: number;
  readonly concurrent: number;
}

/**
 * Lays the groups out in the pool the way rik-network would allocate them: the fill takes
 * slots 0..size-1, and every later instance is created after its predecessor was destroyed
 * (sequential) or after the fill (concurrent), so each takes the lowest free slot: `size`
 * for the sequential ones and size..size+concurrent-1 for the concurrent batch.
 */
export function planInstances({ pool, size, warmup, samples, concurrent }: PlanOptions): InstancePlan {
  const measuredPorts = MEASURED_FIRST_PORT;
  if (size >= 65_535 - FILL_FIRST_PORT) throw new Error(`at most ${65_535 - FILL_FIRST_PORT - 1} fill instances have a host port`);
  if (warmup + samples + concurrent > CHURN_FIRST_PORT - measuredPorts) throw new Error("too many measured instances for the host port range");
  return {
    fill: makeInstances(pool, { prefix: "fill", count: size, firstSlot: 0, firstHostPort: FILL_FIRST_PORT }),
    warmup: makeInstances(pool, { prefix: "warm", count: warmup, firstSlot: size, firstHostPort: measuredPorts }),
    sequential: makeInstances(pool, { prefix: "seq", count: samples, firstSlot: size, firstHostPort: measuredPorts + warmup }),
    concurrent: makeInstances(pool, {
      prefix: "conc",
      count: concurrent,
      firstSlot: size,
      firstHostPort: measuredPorts + warmup + samples,
    }),
  };
}

/**
 * Cycle `cycle` of churn slot `slot`: an id of its own (a new microVM each time), the slot's
 * host port. Its TAP name and /30 are the service's to choose, as for every rik-network instance.
 */
export function churnInstance(pool: string, slot: number, cycle: number): BenchInstance {
  if (!(slot >= 0 && slot < MAX_CHURN_IN_FLIGHT)) throw new RangeError(`churn slot ${slot} is not in 0..${MAX_CHURN_IN_FLIGHT - 1}`);
  return instanceAt(Ipv4Cidr.parse(pool), `churn-${slot}-${cycle}`, slot, CHURN_FIRST_PORT + slot);
}

/**
 * The instance a guest sits behind in the data-path phase, on a node filled with `size`
 * others: exposed on the port after the fill's last, so that with iptables it shares its
 * 512-port DNAT chain with the fill's last instances, as the next instance on that node would.
 */
export function datapathInstance(pool: string, size: number): BenchInstance {
  return instanceAt(Ipv4Cidr.parse(pool), "datapath", size, FILL_FIRST_PORT + size);
}

/** The Function definition sent to rik-network: exposed on `hostPort`, so it gets a DNAT. */
export function definitionOf(instance: BenchInstance): string {
  return functionDefinition({ name: instance.id, exposure: { port: instance.hostPort, targetPort: instance.guestPort } });
}

/** How many /30s a pool holds. */
export function poolCapacity(pool: string): number {
  const cidr = Ipv4Cidr.parse(pool);
  return cidr.prefixLength > 30 ? 0 : cidr.size / 4;
}
