import { Worker } from "node:worker_threads";
import { NetworkError } from "../model/network-error.js";
import { KernelError } from "./kernel-error.js";
import type { Ipv6LinkConf } from "./rtnetlink/rtnetlink.js";
import { MAX_ID } from "./tun-ids.mjs";
import { IFNAMSIZ, TAP_FLAGS } from "./tun-ioctl.mjs";

/**
 * What every TAP gets in /proc/sys/net/ipv6/conf/<tap>/ as it is made, before anything can
 * bring it up: no IPv6 on the host side, not even a link-local address (addr_gen_mode 1,
 * none), and no router advertisement taken from a guest. The guests' network is IPv4 and
 * the node's rules are iptables (IPv4) rules: an IPv6 address on a TAP would let a guest
 * reach the node's own services around them, and an advertisement would let it route the
 * node's IPv6 traffic. Linux keeps these across a rename, so a spare keeps them as an
 * instance's TAP. A node without IPv6 (no /proc/sys/net/ipv6) has nothing to turn off.
 */
export const TAP_IPV6_SYSCTLS: Readonly<Record<"disable_ipv6" | "accept_ra" | "addr_gen_mode", string>> = {
  disable_ipv6: "1",
  accept_ra: "0",
  addr_gen_mode: "1",
};

/** Whether a TAP's IPv6, as the link dump shows it, is what TAP_IPV6_SYSCTLS make it: off, no address of its own, deaf to router advertisements. */
export function hasTapIpv6Settings(conf: Ipv6LinkConf): boolean {
  return conf.disabled && String(conf.acceptRa) === TAP_IPV6_SYSCTLS.accept_ra && String(conf.addrGenMode) === TAP_IPV6_SYSCTLS.addr_gen_mode;
}

/**
 * Who may attach to the TAPs (TUNSETIFF) without CAP_NET_ADMIN. The kernel lets anyone who can
 * open /dev/net/tun attach to a TAP that has neither an owner nor a group, so without either
 * the owner is root (0): only root, or CAP_NET_ADMIN, may attach. With both, a process must be
 * the owner and in the group.
 */
export interface TapCreatorOptions {
  /** TUNSETOWNER: the user that may attach (a jailed VMM's uid). Default: 0 (root) unless `group` is given. */
  readonly owner?: number;
  /** TUNSETGROUP: the group whose members may attach (a jailed VMM's gid). Default: none. */
  readonly group?: number;
}

/**
 * The worker thread, as CommonJS source: plain JS so that it runs the same from dist/ and
 * from source under tsx, which does not reach worker threads. For each request it opens
 * /dev/net/tun, binds it to the TAP (TUNSETIFF), gives the TAP its owner and group, turns
 * IPv6 off on it, with `reset` gives it back a new TAP's settings (tunResetSettings), makes
 * it persistent, answers "created", closes the descriptor (the detach waits for an RCU grace
 * period) and answers "detached". Persistence comes last: when a step
 * fails, closing the descriptor deletes a TAP it had just made (an existing one stays), and
 * the answer names the step and its errno.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { closeSync, constants, existsSync, openSync, writeFileSync } = require("node:fs");
const IPV6 = "/proc/sys/net/ipv6";
function withoutIpv6(name) {
  if (!existsSync(IPV6)) return;
  for (const [key, value] of workerData.ipv6Sysctls) {
    try {
      writeFileSync(IPV6 + "/conf/" + name + "/" + key, value);
    } catch (error) {
      error.request = "sysctl";
      throw error;
    }
  }
}
import(workerData.tunIoctl).then((tun) => {
  parentPort.on("message", ({ id, name, reset }) => {
    let fd;
    try {
      fd = openSync("/dev/net/tun", constants.O_RDWR);
    } catch (error) {
      parentPort.postMessage({ id, failed: "open", errno: error.code, message: error.message });
      return;
    }
    try {
      const attached = tun.tunSetIff(fd, name, workerData.flags);
      if (workerData.owner !== undefined) tun.tunSetOwner(fd, workerData.owner);
      if (workerData.group !== undefined) tun.tunSetGroup(fd, workerData.group);
      withoutIpv6(attached);
      if (reset) tun.tunResetSettings(fd);
      tun.tunSetPersist(fd, true);
    } catch (error) {
      closeSync(fd);
      parentPort.postMessage({ id, failed: error.request ?? "ioctl", errno: error.code, message: error.message });
      return;
    }
    parentPort.postMessage({ id, created: true });
    closeSync(fd);
    parentPort.postMessage({ id, detached: true });
  });
});
`;

type Reply =
  | { readonly id: number; readonly created: true }
  | { readonly id: number; readonly detached: true }
  /** `failed`: "open", the ioctl that failed (TUNSETIFF...), or "sysctl" (IPv6). */
  | { readonly id: number; readonly failed: string; readonly errno?: string; readonly message: string };

interface Pending {
  readonly name: string;
  /** A reclaim (TapCreator.reclaim): its failures are KernelErrors, EBUSY for a TAP something holds. */
  readonly reclaim: boolean;
  readonly created: { resolve: (detached: Promise<void>) => void; reject: (error: unknown) => void };
  detached?: { resolve: () => void; reject: (error: unknown) => void };
}

/**
 * Creates the persistent TAPs VMMs attach to, in a worker thread. The tun driver refuses
 * RTM_NEWLINK, hence ioctls; and ioctls are synchronous: TUNSETIFF waits for the RTNL lock,
 * which the kernel's own link work (linkwatch, address configuration) holds while other
 * TAPs come up, and closing our descriptor waits for an RCU grace period. On the event
 * loop, under 100 concurrent creates on a node with 5000 instances, TUNSETIFF took 2.4 ms on
 * average (0.5 ms alone), with every other create blocked for all of it. The worker calls
 * libc's ioctl through koffi (tun-ioctl.mjs).
 *
 * Every TAP gets the owner and group of TapCreatorOptions and TAP_IPV6_SYSCTLS before it is
 * answered "created", so before anything can bring it up. Idempotent: on an existing TAP
 * with the same flags, TUNSETIFF attaches to it, which gets the owner, group and sysctls
 * too, and TUNSETPERSIST is a no-op. TUNSETOWNER and TUNSETGROUP cannot clear (they refuse
 * -1): a re-attached TAP keeps a group it had, and an owner it had when only a group is given.
 *
 * Equivalent to: `ip tuntap add dev $name mode tap vnet_hdr user ${owner:-0} [group $group] &&
 * sysctl -w net.ipv6.conf.$name.disable_ipv6=1 net.ipv6.conf.$name.accept_ra=0
 * net.ipv6.conf.$name.addr_gen_mode=1`
 */
export class TapCreator {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private sequence = 0;
  private closed = false;
  private readonly options: TapCreatorOptions;

  constructor(options: TapCreatorOptions = {}) {
    for (const [what, id] of [["owner", options.owner], ["group", options.group]] as const) {
      if (id !== undefined && !(Number.isInteger(id) && id >= 0 && id <= MAX_ID)) {
        throw new NetworkError("invalid-argument", `TAP ${what} must be a numeric id from 0 to ${MAX_ID}, got ${id}`);
      }
    }
    this.options = options;
  }

  /** The owner and group every TAP gets; undefined where the TAP keeps what it has. */
  get ownership(): { readonly owner: number | undefined; readonly group: number | undefined } {
    return { owner: this.options.owner ?? (this.options.group === undefined ? 0 : undefined), group: this.options.group };
  }

  /**
   * Resolves once the TAP exists, with a promise of our descriptor detached from it: the TAP
   * can be configured meanwhile, and a VMM can attach once that promise has resolved.
   */
  add(name: string): Promise<{ readonly detached: Promise<void> }> {
    return this.request(name, false);
  }

  /**
   * Takes back an existing TAP that another process may have held, to hand it to a new one:
   * attaches to it, which the kernel refuses (EBUSY) while anything else is attached to it, so
   * that a TAP that is still held is never reclaimed, whatever its carrier says (its holder can
   * turn that off, TUNSETCARRIER); then gives it the owner, group and sysctls of every TAP,
   * and the settings of a new one (tunResetSettings), and detaches. Resolves once detached.
   * Rejects with a KernelError (errno EBUSY: something holds the TAP).
   *
   * Equivalent to: none in iproute2 (what a VMM attaching to the TAP does, then a reset)
   */
  async reclaim(name: string): Promise<void> {
    const { detached } = await this.request(name, true);
    await detached;
  }

  private request(name: string, reclaim: boolean): Promise<{ readonly detached: Promise<void> }> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new NetworkError("unavailable", "rik-network is shutting down; retry against the restarted service"));
        return;
      }
      if (Buffer.byteLength(name) >= IFNAMSIZ) {
        reject(new NetworkError("invalid-argument", `interface name "${name}" is longer than ${IFNAMSIZ - 1} bytes`));
        return;
      }
      const id = ++this.sequence;
      const worker = this.started();
      this.pending.set(id, { name, reclaim, created: { resolve: (detached) => resolve({ detached }), reject } });
      if (this.pending.size === 1) worker.ref();
      worker.postMessage({ id, name, reset: reclaim });
    });
  }

  /** Stops the worker thread; creations under way fail. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }

  private started(): Worker {
    if (this.worker !== undefined) return this.worker;
    const workerData = {
      tunIoctl: new URL("./tun-ioctl.mjs", import.meta.url).href,
      flags: TAP_FLAGS,
      ...this.ownership,
      group: this.options.group,
      ipv6Sysctls: Object.entries(TAP_IPV6_SYSCTLS),
    };
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
    worker.unref();
    worker.on("message", (reply: Reply) => this.answered(worker, reply));
    const failAll = (error: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const { created, detached } of this.pending.values()) {
        const failure = new NetworkError("internal", `the TAP worker thread stopped: ${error.message}`, { cause: error });
        if (detached !== undefined) detached.reject(failure);
        else created.reject(failure);
      }
      this.pending.clear();
    };
    worker.on("error", failAll);
    worker.on("exit", (code) => failAll(new Error(`exit code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private answered(worker: Worker, reply: Reply): void {
    const request = this.pending.get(reply.id);
    if (request === undefined) return;
    if ("created" in reply) {
      request.created.resolve(new Promise<void>((resolve, reject) => (request.detached = { resolve, reject })));
      return;
    }
    this.pending.delete(reply.id);
    // Idle, it must not keep the service alive.
    if (this.pending.size === 0) worker.unref();
    if ("detached" in reply) {
      request.detached?.resolve();
    } else if (reply.failed === "open") {
      request.created.reject(
        new NetworkError("unavailable", `cannot open /dev/net/tun: ${reply.message}; load the tun module (modprobe tun)`, { cause: reply }),
      );
    } else if (request.reclaim) {
      request.created.reject(new KernelError(`reclaiming TAP ${request.name} (${reply.failed})`, reply.errno, { cause: reply, detail: reply.message }));
    } else if (reply.failed === "sysctl") {
      request.created.reject(new NetworkError("internal", `creating TAP ${request.name} failed: turning IPv6 off on it: ${reply.message}`, { cause: reply }));
    } else {
      const clash = reply.failed === "TUNSETIFF" && (reply.errno === "EINVAL" || reply.errno === "EBUSY");
      const hint = clash ? `: a device named ${request.name} that is not a matching TAP already exists; delete it or free the name` : "";
      request.created.reject(
        new NetworkError("internal", `creating TAP ${request.name} failed with ${reply.errno ?? reply.message} in ${reply.failed}${hint}`, { cause: reply }),
      );
    }
  }
}
