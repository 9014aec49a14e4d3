/**
 * Many guests at once, cheaply: for N Function instances, ONE guest namespace holds all N
 * guest NICs and ONE process there (`fleet-guests.mjs`) serves HTTP on every guest address;
 * ONE relay process (`fleet-relay.ts`) in the node namespace attaches to all N TAPs as N
 * Firecracker VMMs would and copies frames between each TAP and its guest NIC.
 * `startGuest` (guest-relay.ts) costs a relay, a namespace and a server per guest; this costs
 * two processes and a namespace for any N.
 *
 * Sharing one namespace, the guests would share one routing table, and a reply would leave
 * by whichever NIC the main table picks. Policy routing gives each guest address its own
 * table whose default route goes through its own NIC and host address, so each guest behaves
 * like a VM booted with `ip=<guest>::<host>:<mask>::eth0:off`.
 */
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { configureGuestNics, type GuestNetwork } from "./configure-guest-nics.js";
import {
  createNamespace,
  execIn,
  killProcess,
  onNamespaceDelete,
  REPO_ROOT,
  setUpNamespace,
  spawnIn,
  uniqueName,
  type NsProcess,
} from "./netns.js";
import { ProcessOutput } from "./process-output.js";

const GUESTS_SCRIPT = fileURLToPath(new URL("./fleet-guests.mjs", import.meta.url));
const RELAY_SCRIPT = fileURLToPath(new URL("./fleet-relay.ts", import.meta.url));

/** libuv's threadpool cap; the relay needs 2 threads per guest plus a few of node's own. */
const MAX_THREADPOOL_SIZE = 1024;
const SPARE_THREADS = 4;
export const MAX_FLEET_SIZE = (MAX_THREADPOOL_SIZE - SPARE_THREADS) / 2;

/**
 * Routing tables and rule priorities of guest i are FIRST_TABLE + i: clear of the reserved
 * tables 253-255 (default, main, local) and below the main rule's priority 32766 for any N.
 */
const FIRST_TABLE = 1000;

/**
 * Link group of every guest NIC. Deleting a group is one batched unregister (~40 ms for 100
 * NICs); letting the relay's exit close the non-persistent TAPs one by one takes ~18 ms each.
 */
const NIC_GROUP = 77;

/** Guest i's NIC is `g<i>`. */
const NIC_PREFIX = "g";

/** One guest: the instance's network as the service reports it. */
export interface FleetGuest extends GuestNetwork {
  /** The service's TAP in the node namespace. */
  readonly tapName: string;
}

export interface GuestFleetOptions {
  /** Namespace holding the service's TAPs (a topology's `node`). */
  readonly nodeNs: string;
  readonly guests: readonly FleetGuest[];
  /** Port the guests' HTTP server listens on, on every guest address. Default 3000. */
  readonly port?: number;
  /** Firecracker-like TUNSETOFFLOAD on every TAP fd. Default true. */
  readonly offload?: boolean;
  /** Name of the guest namespace. Default `<topology id>-fleet-<hex>` derived from `nodeNs`. */
  readonly guestNs?: string;
  readonly readyTimeoutMs?: number;
}

export interface FleetTimings {
  /** From the call until the relay attached to every TAP (NICs made, server started meanwhile). */
  readonly relayReadyMs: number;
  /** Guest NICs' addresses, rules and routes configured. */
  readonly configureMs: number;
  /** From the call to a fleet whose guests all answer. */
  readonly totalMs: number;
}

export interface GuestFleet {
  /** The one namespace holding every guest NIC and the HTTP server. */
  readonly guestNs: string;
  readonly port: number;
  readonly guests: readonly FleetGuest[];
  /** The guest-side process (HTTP server; its relay child writes to the same stdout/stderr). */
  readonly output: ProcessOutput;
  /** Pid of the relay, in the node namespace. */
  readonly relayPid: number;
  readonly timings: FleetTimings;
  /** Guests whose TAP pair broke since the start (e.g. the service deleted the TAP), with why. */
  down(): { index: number; reason: string }[];
  /** Runs a command inside the guest namespace. */
  exec(file: string, ...args: string[]): ReturnType<typeof execIn>;
  /** Detaches from every TAP (stops the relay) and deletes the guest namespace. Idempotent. */
  stop(): Promise<void>;
}

/** What `fleet-guests.mjs` reads from its argv. */
interface FleetGuestsConfig {
  readonly taps: readonly string[];
  readonly nicPrefix: string;
  readonly port: number;
  readonly offload: boolean;
  readonly nodeNs: string;
  readonly guestNs: string;
  readonly relayScript: string;
  readonly cwd: string;
  readonly threadpoolSize: number;
}

/** Name of guest i's NIC inside the guest namespace. */
export function fleetNicName(index: number): string {
  return `${NIC_PREFIX}${index}`;
}

/** What the fleet's HTTP server answers when reached on `guestIp`. */
export function fleetGuestBody(guestIp: string): string {
  return `guest ${guestIp}`;
}

/**
 * Attaches a guest to every `guests[i].tapName` in `nodeNs` and starts the HTTP server on
 * `0.0.0.0:<port>` in the guest namespace. Guest i's NIC is `g<i>`. Everything is removed by
 * `stop()` or when the topology is disposed (the guest namespace belongs to it).
 */
export async function startGuestFleet(options: GuestFleetOptions): Promise<GuestFleet> {
  const started = performance.now();
  const { guests } = options;
  validate(guests);
  const port = options.port ?? 3000;
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const guestNs = options.guestNs ?? uniqueName(`${options.nodeNs.replace(/-node$/, "")}-fleet`);
  await createNamespace(guestNs);

  let guestSide: NsProcess | undefined;
  onNamespaceDelete(guestNs, async () => {
    // Before the namespace goes, and while the relay still holds every fd: the guest NICs go
    // first, all at once (see NIC_GROUP). Then the guest side stops the relay and exits.
    await execa("ip", ["-n", guestNs, "link", "del", "group", String(NIC_GROUP)], { reject: false, timeout: 10_000 });
    if (guestSide !== undefined) await killProcess(guestSide, "SIGTERM", 3000);
  });

  return setUpNamespace(guestNs, async () => {
    const config: FleetGuestsConfig = {
      taps: guests.map((guest) => guest.tapName),
      nicPrefix: NIC_PREFIX,
      port,
      offload: options.offload !== false,
      nodeNs: options.nodeNs,
      guestNs,
      relayScript: RELAY_SCRIPT,
      cwd: REPO_ROOT,
      threadpoolSize: 2 * guests.length + SPARE_THREADS,
    };
    guestSide = spawnIn(guestNs, process.execPath, [GUESTS_SCRIPT, JSON.stringify(config)], { cwd: REPO_ROOT });
    const output = new ProcessOutput(guestSide, `guest fleet of ${guests.length} in ${guestNs}`);
    const relayReady = output
      .waitForLine((line) => line === "ready", readyTimeoutMs, 'the relay\'s "ready"')
      .then(() => performance.now() - started);
    const [relayReadyMs, relayLine] = await Promise.all([
      relayReady,
      output.waitForLine((line) => line.startsWith("relay "), readyTimeoutMs, '"relay <pid>"'),
      output.waitForLine((line) => line.startsWith("listening "), readyTimeoutMs, '"listening"'),
    ]);

    const configureStarted = performance.now();
    const nics = guests.map((guest, index) => ({ ...guest, nic: fleetNicName(index), group: NIC_GROUP, table: FIRST_TABLE + index }));
    await configureGuestNics(guestNs, nics, 30_000);
    const configureMs = performance.now() - configureStarted;

    return {
      guestNs,
      port,
      guests,
      output,
      relayPid: Number(relayLine.slice("relay ".length)),
      timings: { relayReadyMs, configureMs, totalMs: performance.now() - started },
      down: () =>
        output.stdout.flatMap((line) => {
          const match = /^down (\d+) (.*)$/.exec(line);
          return match === null ? [] : [{ index: Number(match[1]), reason: match[2] ?? "" }];
        }),
    };
  });
}

function validate(guests: readonly FleetGuest[]): void {
  if (guests.length === 0) throw new Error("startGuestFleet: no guests");
  if (guests.length > MAX_FLEET_SIZE) {
    throw new Error(`startGuestFleet: ${guests.length} guests, at most ${MAX_FLEET_SIZE} (libuv threadpool limit)`);
  }
  const seen = new Set<string>();
  for (const key of guests.flatMap((guest) => [`tap ${guest.tapName}`, `ip ${guest.guestIp}`])) {
    if (seen.has(key)) throw new Error(`startGuestFleet: duplicate ${key}`);
    seen.add(key);
  }
}
