/** A TAP as an instance needs it. */
export interface DesiredTap {
  readonly tapName: string;
  readonly hostIp: string;
  readonly prefixLength: number;
  readonly mtu: number;
}
