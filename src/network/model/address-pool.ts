import { formatIpv4, Ipv4Cidr, prefixToMask } from "./ipv4-cidr.js";
import { NetworkError } from "./network-error.js";

/** One /30 handed to an instance: host side = the guest's gateway. */
export interface Allocation {
  /** Index of the /30 inside the pool; stable identity of the allocation. */
  readonly slot: number;
  readonly subnet: string;
  readonly hostIp: string;
  readonly guestIp: string;
  readonly prefixLength: 30;
  readonly mask: string;
}

const SLOT_SIZE = 4;

/**
 * Hands out /30s from a pool, lowest free first. Kept as an array of owners so that
 * allocation, release and lookup cost O(1) amortised whatever the number of instances.
 */
export class AddressPool {
  readonly cidr: Ipv4Cidr;
  private readonly owners: (string | undefined)[];
  private used = 0;
  /** Every slot below this index is taken: the search for a free slot starts here. */
  private lowestFree = 0;

  constructor(cidr: Ipv4Cidr) {
    if (cidr.prefixLength > 30) {
      throw new NetworkError("invalid-argument", `pool ${cidr.toString()} is smaller than one /30; use a prefix of /30 or shorter`);
    }
    this.cidr = cidr;
    this.owners = new Array<string | undefined>(cidr.size / SLOT_SIZE);
  }

  get capacity(): number {
    return this.owners.length;
  }

  get size(): number {
    return this.used;
  }

  /** Takes the lowest free /30 for `owner`. */
  allocate(owner: string): Allocation {
    while (this.lowestFree < this.owners.length && this.owners[this.lowestFree] !== undefined) {
      this.lowestFree++;
    }
    if (this.lowestFree >= this.owners.length) {
      throw new NetworkError(
        "resource-exhausted",
        `address pool ${this.cidr.toString()} is exhausted (${this.capacity} /30s in use); destroy instances or configure a larger --pool`,
      );
    }
    return this.reserve(this.lowestFree, owner);
  }

  /** Takes a specific slot, e.g. when restoring a recorded allocation. */
  reserve(slot: number, owner: string): Allocation {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.owners.length) {
      throw new NetworkError("invalid-argument", `slot ${slot} is outside pool ${this.cidr.toString()}`);
    }
    const current = this.owners[slot];
    if (current !== undefined && current !== owner) {
      throw new NetworkError("already-exists", `slot ${slot} of pool ${this.cidr.toString()} is held by instance "${current}"`);
    }
    if (current === undefined) {
      this.owners[slot] = owner;
      this.used++;
    }
    return this.describe(slot);
  }

  release(slot: number): void {
    if (this.owners[slot] === undefined) return;
    this.owners[slot] = undefined;
    this.used--;
    if (slot < this.lowestFree) this.lowestFree = slot;
  }

  ownerOf(slot: number): string | undefined {
    return this.owners[slot];
  }

  describe(slot: number): Allocation {
    const base = this.cidr.network + slot * SLOT_SIZE;
    return {
      slot,
      subnet: `${formatIpv4(base)}/30`,
      hostIp: formatIpv4(base + 1),
      guestIp: formatIpv4(base + 2),
      prefixLength: 30,
      mask: prefixToMask(30),
    };
  }
}
