import type { Logger } from "../../../logger.js";
import { KernelError } from "../../kernel/kernel-error.js";
import { TAP_PREFIX } from "../../model/instance-naming.js";
import { NetworkError } from "../../model/network-error.js";
import type { LinkInfo, Rtnetlink } from "../../kernel/rtnetlink/rtnetlink.js";
import { MAX_SPARE_TAPS } from "../../model/spare-count.js";
import type { DesiredTap } from "./desired-tap.js";
import type { TapCreator } from "../../kernel/tap-creator.js";
import type { TapDeleter } from "../../kernel/tap-deleter.js";

const SPARE_PREFIX = `${TAP_PREFIX}-spare-`;
const SPARE_NAME_PATTERN = /^rik-spare-\d{1,5}$/;
/** Spare names cycle through 0..99999: 15 bytes at most, like every TAP name. */
const SPARE_NUMBERS = 100_000;
/**
 * A taken spare is replaced this long after, not at once: the new TAP's ioctls and RCU
 * grace period would otherwise compete with the CREATE that took it, which is still
 * configuring its TAP and answering.
 */
const REFILL_DELAY_MS = 20;
/** After a failed refill (e.g. a foreign device holding a spare's name), wait before trying again. */
const REFILL_RETRY_MS = 5000;

/** Whether `name` is one of the spare TAPs this service keeps (`rik-spare-N`). */
export function isSpareTapName(name: string): boolean {
  return SPARE_NAME_PATTERN.test(name);
}

interface Spare {
  readonly name: string;
  readonly index: number;
}

export interface SpareTapsOptions {
  /** How many TAPs to keep ready; 0 turns spares off (every CREATE makes its TAP). */
  readonly count: number;
  readonly taps: TapCreator;
  /** The node's one TapDeleter, so that spare deletions join the instances' in one group delete. */
  readonly deleter: TapDeleter;
  readonly rtnetlink: Rtnetlink;
  readonly logger: Logger;
}

/**
 * A few TAPs made ahead of time, down and without an address, so that a CREATE renames one
 * instead of making its own: TUNSETIFF, TUNSETPERSIST, the detach's RCU grace period and
 * the index lookup (about 1 ms on the CREATE path on this 2-core machine) move to a
 * background refill. A spare is taken whole or not at all: when renaming it fails, it is
 * deleted, and the CREATE makes its TAP the usual way.
 *
 * Spares are named `rik-spare-N`, outside the instance TAP names (`rik` + 12 base32
 * characters), so reconcile never takes one for an orphan. A spare carries no address and
 * never comes up, so no rule matches a packet of it. The ones a crash left behind are
 * deleted at start, and close deletes the rest: a stopped service leaves none.
 *
 * A destroyed instance's TAP becomes a spare instead of a new one being made, when one is
 * wanted (adopt), once TapCreator.reclaim has shown that nothing holds it and reset it.
 */
export class SpareTaps {
  private readonly options: SpareTapsOptions;
  private readonly ready: Spare[] = [];
  private next = 0;
  /** Spares on their way: one being made by fill, and retired TAPs being adopted. */
  private making = 0;
  private adopting = 0;
  private readonly adoptions = new Set<Promise<unknown>>();
  private filling: Promise<void> | undefined;
  private cleaning: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: SpareTapsOptions) {
    if (!(Number.isInteger(options.count) && options.count >= 0 && options.count <= MAX_SPARE_TAPS)) {
      throw new NetworkError("invalid-argument", `spare TAP count must be an integer from 0 to ${MAX_SPARE_TAPS}, got ${options.count}`);
    }
    this.options = options;
  }

  /** Spares ready to be taken. */
  get size(): number {
    return this.ready.length;
  }

  /** Whether a retired TAP would be adopted now: fewer than `count` spares are ready or on their way. */
  wantsMore(): boolean {
    return !this.closed && this.ready.length + this.making + this.adopting < this.options.count;
  }

  /**
   * Deletes the spares a previous process left (`links` is a dump of the node's links:
   * they may have been touched since, so none is trusted) and fills up, both in the
   * background. New spares are numbered past every device named like a spare, so the two
   * never meet.
   */
  start(links: readonly LinkInfo[]): void {
    const named = links.filter((link) => isSpareTapName(link.name));
    for (const { name } of named) this.next = Math.max(this.next, (Number(name.slice(SPARE_PREFIX.length)) + 1) % SPARE_NUMBERS);
    // A device of another kind under such a name is not ours: it is skipped, not deleted.
    const leftovers = named.filter((link) => link.kind === "tun").map((link) => link.name);
    if (leftovers.length > 0) {
      this.cleaning = Promise.all(leftovers.map((name) => this.options.deleter.delete(name))).then(
        () => undefined,
        (error: unknown) => {
          this.options.logger.warn("cannot delete the spare TAPs a previous run left", { spares: leftovers, error: (error as Error).message });
        },
      );
    }
    this.schedule(0);
  }

  /**
   * Turns a spare into `tap`: renamed, addressed and up, with its MTU and route_localnet.
   * Returns false when no spare was ready or renaming it failed (the caller makes the TAP
   * itself). Throws once the spare bears `tap.tapName` but could not be configured: the
   * caller's undo deletes the TAP by that name.
   *
   * Equivalent to: `ip link set dev rik-spare-N name $tap mtu $mtu up && ip addr replace
   * $host/30 dev $tap && sysctl -w net.ipv4.conf.$tap.route_localnet=$routeLocalnet`
   */
  async take(tap: DesiredTap, routeLocalnet: boolean): Promise<boolean> {
    const spare = this.ready.pop();
    if (spare === undefined) return false;
    this.schedule(REFILL_DELAY_MS);
    const { rtnetlink } = this.options;
    // By index, so both go at once: the address does not care what the link is called.
    const [renamed, addressed] = await Promise.allSettled([
      rtnetlink.linkSetUp(spare.index, { rename: tap.tapName, mtu: tap.mtu, routeLocalnet, name: spare.name }),
      // Named as the TAP: its failure is thrown only once the rename succeeded.
      rtnetlink.addrReplace(spare.index, tap.hostIp, tap.prefixLength, { name: tap.tapName }),
    ]);
    if (renamed.status === "rejected") {
      // Most likely a device already bears the name (what TUNSETIFF re-attaches to); the
      // spare may hold the address by now, so it is not put back.
      this.options.logger.warn("a spare TAP could not be renamed; deleting it and creating the TAP instead", {
        spare: spare.name,
        tap: tap.tapName,
        error: (renamed.reason as Error).message,
      });
      await this.options.deleter.delete(spare.name).catch(() => undefined);
      return false;
    }
    if (addressed.status === "rejected") throw addressed.reason;
    return true;
  }

  /**
   * Makes the retired TAP `name` (index `index`: down, without its address, named outside the
   * instance TAPs) a spare, when one is wanted (wantsMore). Resolves false when none is, or
   * renaming it failed: it is still `name`, for the caller to delete. Resolves true once it
   * bears the spare's name, whatever comes next: a TAP that something still holds (which
   * TapCreator.reclaim refuses, whatever its carrier says), or that cannot be reset, is
   * deleted, never made a spare.
   *
   * Equivalent to: `ip link set dev $name name rik-spare-N && ip -4 addr flush dev
   * rik-spare-N`, then TapCreator.reclaim (attach, reset, detach)
   */
  adopt(index: number, name: string, refusal: (link: LinkInfo) => string | undefined = () => undefined): Promise<boolean> {
    if (!this.wantsMore()) return Promise.resolve(false);
    this.adopting++;
    const adoption = this.adoptAs(index, name, this.nextName(), refusal).finally(() => {
      this.adopting--;
      this.adoptions.delete(adoption);
    });
    this.adoptions.add(adoption);
    return adoption.then((outcome) => {
      // A TAP that could not be adopted leaves a spare missing: the usual refill makes it.
      if (outcome === "deleted") this.schedule(REFILL_DELAY_MS);
      return outcome !== "not renamed";
    });
  }

  private async adoptAs(
    index: number,
    name: string,
    spare: string,
    refusal: (link: LinkInfo) => string | undefined,
  ): Promise<"adopted" | "deleted" | "not renamed"> {
    const { rtnetlink, logger } = this.options;
    try {
      await rtnetlink.linkRename(index, spare, { name });
    } catch (error) {
      logger.debug("a retired TAP could not be renamed into a spare", { tap: name, spare, error: (error as Error).message });
      return "not renamed";
    }
    try {
      // Any address someone added besides the instance's, which the DESTROY removed.
      await rtnetlink.addrFlush(index, { name: spare });
      await this.options.taps.reclaim(spare);
      // TUNSETIFF makes a TAP when none bears the name: the one reclaimed must be the one retired.
      const reclaimed = await rtnetlink.linkIndex(spare);
      if (reclaimed !== index) throw new NetworkError("internal", `${spare} is another device (index ${reclaimed}) than the retired TAP (index ${index})`);
      // Read again now that no one else holds it: its last holder may have changed its link type, owner or group meanwhile.
      const refused = refusal(await rtnetlink.linkGet(index, { name: spare }));
      if (refused !== undefined) throw new NetworkError("internal", `${spare} cannot be a spare: ${refused}`);
      this.ready.push({ name: spare, index });
      return "adopted";
    } catch (error) {
      const held = error instanceof KernelError && error.errno === "EBUSY";
      logger.warn(
        held
          ? "a retired TAP is still held by a process, though its carrier is off; deleting it rather than making it a spare"
          : "a retired TAP could not be made a spare; deleting it",
        { tap: spare, index, error: (error as Error).message },
      );
      await this.options.deleter.delete(spare).catch(() => undefined);
      return "deleted";
    }
  }

  /** Stops refilling and deletes the spares, adopted ones too. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await Promise.all([this.filling, this.cleaning, ...this.adoptions]);
    const spares = this.ready.splice(0);
    await Promise.all(spares.map((spare) => this.options.deleter.delete(spare.name).catch(() => undefined)));
  }

  private schedule(delayMs: number): void {
    if (this.closed || this.timer !== undefined || this.filling !== undefined) return;
    if (this.ready.length + this.adopting >= this.options.count) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.filling = this.fill().then((failed) => {
        this.filling = undefined;
        if (failed) this.schedule(REFILL_RETRY_MS);
      });
    }, delayMs);
    this.timer.unref();
  }

  /**
   * Equivalent to: `ip tuntap add dev rik-spare-N mode tap vnet_hdr`, until `count` are
   * ready. One at a time: refills are never urgent, and CREATEs share the TAP worker.
   * Resolves true when making one failed (logged), for a later retry; never rejects.
   */
  private async fill(): Promise<boolean> {
    while (!this.closed && this.ready.length + this.adopting < this.options.count) {
      const name = this.nextName();
      let created = false;
      this.making = 1;
      try {
        const { detached } = await this.options.taps.add(name);
        created = true;
        await detached;
        this.ready.push({ name, index: await this.options.rtnetlink.linkIndex(name) });
      } catch (error) {
        // Only what we made: a failed TUNSETIFF may mean that a foreign device has this name.
        if (created) await this.options.deleter.delete(name).catch(() => undefined);
        if (this.closed) return false;
        this.options.logger.warn(`cannot make a spare TAP; retrying in ${REFILL_RETRY_MS / 1000} s (CREATEs make their own TAP meanwhile)`, {
          spare: name,
          error: (error as Error).message,
        });
        return true;
      } finally {
        this.making = 0;
      }
    }
    return false;
  }

  /** The next spare name: numbers past every one used, cycling. */
  private nextName(): string {
    const name = `${SPARE_PREFIX}${this.next}`;
    this.next = (this.next + 1) % SPARE_NUMBERS;
    return name;
  }
}
