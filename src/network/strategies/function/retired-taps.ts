import type { Logger } from "../../../logger.js";
import { isKernelNotFound } from "../../kernel/kernel-error.js";
import type { LinkInfo, Rtnetlink } from "../../kernel/rtnetlink/rtnetlink.js";
import { hasTapIpv6Settings } from "../../kernel/tap-creator.js";
import type { TapDeleter } from "../../kernel/tap-deleter.js";
import { faultPoint } from "../../support/fault-point.js";
import { rollBack } from "../../support/rollback.js";
import type { DesiredTap } from "./desired-tap.js";
import type { SpareTaps } from "./spare-taps.js";

const DOOMED_PREFIX = "rik-doom-";
/** The index in base 36: 6 characters at most (2^31 - 1 is "zik0zj"), so 15 bytes at most, like every TAP name. */
const DOOMED_NAME_PATTERN = /^rik-doom-[0-9a-z]{1,6}$/;
/** ARPHRD_ETHER (<linux/if_arp.h>): what every TAP is made as. */
const ARPHRD_ETHER = 1;

/**
 * The name a destroyed instance's TAP takes until it is deleted or becomes a spare:
 * `rik-doom-` and its index in base 36. No two links have the same index, so no two retired
 * TAPs have the same name; it is outside the instance TAP names (`rik` + 12 base32
 * characters, no dash) and the spares', and still matches the firewall's `rik+`.
 */
export function doomedTapName(index: number): string {
  return `${DOOMED_PREFIX}${index.toString(36)}`;
}

/** Whether `name` is that of a retired TAP (doomedTapName), of this process or an earlier one. */
export function isDoomedTapName(name: string): boolean {
  return DOOMED_NAME_PATTERN.test(name);
}

/** What a retired TAP is checked against before it becomes a spare. */
export interface RecycleExpectation {
  /** The doomed name it was given. */
  readonly name: string;
  /** The owner and group every TAP of the node gets (TapCreator.ownership). */
  readonly owner: number | undefined;
  readonly group: number | undefined;
}

/**
 * Why the retired TAP `link` (as a link lookup after its rename shows it) must not become a
 * spare, or undefined when it may, pending TapCreator.reclaim's proof that nothing holds it.
 * Its holder can change, through its own descriptor and without any privilege, its owner,
 * group and link type, and turn its carrier off: what a new TAP would not have is refused here,
 * and a carrier that is on (something holds it) too.
 */
export function recycleRefusal(link: LinkInfo, expected: RecycleExpectation): string | undefined {
  if (link.name !== expected.name) return `renamed to ${link.name} meanwhile`;
  if (link.kind !== "tun") return `a ${link.kind ?? "physical"} device, not a TAP`;
  if (link.carrier !== false) return "its carrier is on: something holds it";
  if (link.up) return "brought up again";
  if (link.hardwareType !== ARPHRD_ETHER) return `link type ${link.hardwareType ?? "unknown"}, not Ethernet`;
  if (link.tunOwner !== expected.owner || link.tunGroup !== expected.group) {
    return `owner ${link.tunOwner ?? "none"} and group ${link.tunGroup ?? "none"}, not the node's ${expected.owner ?? "none"} and ${expected.group ?? "none"}`;
  }
  if (link.ipv6 !== undefined && !hasTapIpv6Settings(link.ipv6)) return "IPv6 turned back on";
  return undefined;
}

export interface RetiredTapsOptions {
  readonly rtnetlink: Rtnetlink;
  readonly spares: SpareTaps;
  /** The node's one TapDeleter: retired TAPs join the other deletions in one group delete. */
  readonly deleter: TapDeleter;
  /** The owner and group every TAP gets (TapCreator.ownership): a retired TAP with others is not recycled. */
  readonly ownership: { readonly owner: number | undefined; readonly group: number | undefined };
  readonly logger: Logger;
}

/**
 * The TAPs of destroyed instances. A DESTROY retires its TAP: down, its address removed and
 * renamed out of the instance's name (doomedTapName), which takes a few quick rtnetlink
 * requests; then it answers, while the TAP is deleted in the background, batched with the
 * node's other deletions (TapDeleter), or becomes a spare when one is wanted and nothing
 * holds it (SpareTaps.adopt). The delete's RCU grace period is thus never on the DESTROY's
 * path, and a CREATE of the same instance can make its TAP at once. What a crash leaves in the
 * background phase bears a doomed name, which the next reconcile deletes; close waits for the
 * background work, so a stopped service leaves none.
 */
export class RetiredTaps {
  private readonly options: RetiredTapsOptions;
  /** Doomed names whose deletion or adoption is under way, with its work. */
  private readonly settling = new Map<string, Promise<void>>();
  private closed = false;

  constructor(options: RetiredTapsOptions) {
    this.options = options;
  }

  /** Whether `name` is a retired TAP this process is deleting or adopting: reconcile leaves it to that. */
  isSettling(name: string): boolean {
    return this.settling.has(name);
  }

  /**
   * Makes `tap` unusable at once and hands it to the background: resolves once it is down,
   * has lost its address and bears a doomed name. A TAP that is already gone is nothing to do.
   * When a step fails (the doomed name is taken...), the TAP is deleted instead, here, and
   * the DESTROY goes on once that worked; when that fails too, the first error is thrown,
   * with the failed delete attached (rollBack).
   *
   * Equivalent to: `ip link set dev $tap down && ip addr del $host/$len dev $tap && ip link
   * set dev $tap name rik-doom-$index36`, then, in the background, `ip link del dev
   * rik-doom-$index36` or SpareTaps.adopt
   */
  async retire(tap: DesiredTap, context: { readonly instanceId: string }): Promise<void> {
    const { rtnetlink } = this.options;
    const name = tap.tapName;
    let index: number;
    try {
      index = await rtnetlink.linkIndex(name);
    } catch (error) {
      if (isKernelNotFound(error)) return;
      return this.deleteInstead(name, error, context);
    }
    const doomed = doomedTapName(index);
    // Sent back to back, and applied in this order: the rename comes once the link is down,
    // as kernels before 6.2 refuse to rename a link that is up (EBUSY).
    const steps = await Promise.allSettled([
      rtnetlink.linkSetDown(index, { name }),
      rtnetlink.addrDel(index, tap.hostIp, tap.prefixLength, { name }),
      rtnetlink.linkRename(index, doomed, { name }),
    ]);
    const renamed = steps[2].status === "fulfilled";
    // Not found: the address was already gone, or the whole TAP (then nothing is left to do).
    const failed = steps.find((step): step is PromiseRejectedResult => step.status === "rejected" && !isKernelNotFound(step.reason));
    if (failed !== undefined) return this.deleteInstead(renamed ? doomed : name, failed.reason, context);
    if (!renamed) return;
    faultPoint("destroy: TAP renamed, deletion pending");
    const work = this.recycleOrDelete(index, doomed).finally(() => this.settling.delete(doomed));
    this.settling.set(doomed, work);
  }

  /** Waits for the background work: every retired TAP deleted or a spare. No new one is adopted. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.settling.size > 0) await Promise.all(this.settling.values());
  }

  /**
   * Deletes the TAP now named `name` after a failed retirement. Resolves once deleted (the
   * failure is logged); throws `original`, with the failed delete attached, when it cannot be.
   */
  private async deleteInstead(name: string, original: unknown, context: { readonly instanceId: string }): Promise<void> {
    const { deleter, logger } = this.options;
    let deleted = true;
    const outcome = await rollBack(
      original,
      [
        {
          name: `delete TAP ${name}`,
          run: () =>
            deleter.delete(name).catch((error: unknown) => {
              deleted = false;
              throw error;
            }),
        },
      ],
      { logger, instanceId: context.instanceId },
    ).catch((error: unknown) => error);
    if (!deleted) throw outcome;
    logger.warn("a TAP could not be made unusable; it was deleted instead", {
      instance_id: context.instanceId,
      tap: name,
      error: original instanceof Error ? original.message : String(original),
    });
  }

  /** Never rejects: what it cannot do is logged, and left to the next reconcile. */
  private async recycleOrDelete(index: number, name: string): Promise<void> {
    const { rtnetlink, spares, deleter, logger, ownership } = this.options;
    try {
      if (!this.closed && spares.wantsMore()) {
        // Read after the rename: nothing can have attached by the instance's name since.
        const refusal = recycleRefusal(await rtnetlink.linkGet(index, { name }), { name, ...ownership });
        // Checked again once reclaimed (SpareTaps.adopt): until its holder let go, it could change them.
        const recheck = (link: LinkInfo) => recycleRefusal(link, { name: link.name, ...ownership });
        if (refusal === undefined && (await spares.adopt(index, name, recheck))) return;
        if (refusal !== undefined) logger.debug("a retired TAP is deleted, not made a spare", { tap: name, reason: refusal });
      }
    } catch (error) {
      if (isKernelNotFound(error)) return;
      logger.warn("cannot tell whether a retired TAP can be made a spare; deleting it", { tap: name, error: (error as Error).message });
    }
    try {
      await deleter.delete(name);
    } catch (error) {
      logger.warn("cannot delete a retired TAP; the next reconcile (the resync, or the next start) deletes it", { tap: name, error: (error as Error).message });
    }
  }
}
