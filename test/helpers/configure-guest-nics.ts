/**
 * Configuring guest NICs as a guest kernel booted with `ip=<guest>::<host>:<mask>::<nic>:off`
 * configures its NIC, for `guest-relay.ts` (one guest per namespace) and `guest-fleet.ts`
 * (many guests sharing one namespace).
 */
import { execa } from "execa";

/** What a guest's NIC gets from the instance's network, as the service reports it. */
export interface GuestNetwork {
  readonly guestIp: string;
  readonly hostIp: string;
  readonly prefixLength: number;
  readonly guestMac: string;
  readonly mtu: number;
}

export interface GuestNic extends GuestNetwork {
  /** The NIC's name in the guest namespace. */
  readonly nic: string;
  /** Renamed to this first, e.g. `eth0`. */
  readonly renameTo?: string;
  /** Link group to put it in, so that many NICs can be deleted at once. */
  readonly group?: number;
  /**
   * For guests sharing a namespace: the routing table (and rule priority) that replies from
   * `guestIp` use, with its own default route. Default: the default route goes in the main table.
   */
  readonly table?: number;
}

/** Configures every NIC in `guestNs` (up, MAC, MTU, address, default route) with one `ip -batch`. */
export async function configureGuestNics(guestNs: string, nics: readonly GuestNic[], timeoutMs: number): Promise<void> {
  const commands = nics.flatMap(nicCommands);
  await execa("ip", ["-n", guestNs, "-batch", "-"], { input: `${commands.join("\n")}\n`, timeout: timeoutMs });
}

function nicCommands(guest: GuestNic): string[] {
  const nic = guest.renameTo ?? guest.nic;
  const group = guest.group === undefined ? "" : ` group ${guest.group}`;
  const table = guest.table === undefined ? "" : ` table ${guest.table}`;
  return [
    ...(guest.renameTo === undefined ? [] : [`link set dev ${guest.nic} name ${guest.renameTo}`]),
    `link set dev ${nic} address ${guest.guestMac} mtu ${guest.mtu}${group} up`,
    `addr add ${guest.guestIp}/${guest.prefixLength} dev ${nic}`,
    // Replies (source = this guest's address) leave by this guest's NIC, to its host address.
    ...(guest.table === undefined ? [] : [`rule add from ${guest.guestIp}${table} pref ${guest.table}`]),
    `route add default via ${guest.hostIp} dev ${nic}${table}`,
  ];
}
