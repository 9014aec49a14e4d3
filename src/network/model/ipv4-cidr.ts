import { NetworkError } from "./network-error.js";

/** An IPv4 address as an unsigned 32-bit integer. */
export type Ipv4 = number;

const octet = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function parseIpv4(text: string): Ipv4 | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => octet.test(p))) return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIpv4(address: Ipv4): string {
  return [address >>> 24, (address >>> 16) & 255, (address >>> 8) & 255, address & 255].join(".");
}

export function ipv4Bytes(address: Ipv4): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(address >>> 0);
  return bytes;
}

export function prefixToMask(prefixLength: number): string {
  return formatIpv4(maskBits(prefixLength));
}

function maskBits(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

/** An aligned IPv4 network, e.g. 10.220.0.0/16. */
export class Ipv4Cidr {
  readonly network: Ipv4;
  readonly prefixLength: number;

  constructor(network: Ipv4, prefixLength: number) {
    this.network = (network & maskBits(prefixLength)) >>> 0;
    this.prefixLength = prefixLength;
  }

  /** Parses "a.b.c.d/n"; the address must be the network address itself. */
  static parse(text: string): Ipv4Cidr {
    const [addressText, prefixText, ...rest] = text.split("/");
    const address = addressText === undefined ? undefined : parseIpv4(addressText);
    const prefixLength = /^\d{1,2}$/.test(prefixText ?? "") ? Number(prefixText) : NaN;
    if (address === undefined || rest.length > 0 || !(prefixLength >= 0 && prefixLength <= 32)) {
      throw new NetworkError("invalid-argument", `"${text}" is not an IPv4 CIDR such as 10.220.0.0/16`);
    }
    const cidr = new Ipv4Cidr(address, prefixLength);
    if (cidr.network !== address) {
      throw new NetworkError(
        "invalid-argument",
        `"${text}" has host bits set; did you mean ${cidr.toString()}?`,
      );
    }
    return cidr;
  }

  get size(): number {
    return 2 ** (32 - this.prefixLength);
  }

  get last(): Ipv4 {
    return this.network + this.size - 1;
  }

  contains(address: Ipv4): boolean {
    return address >= this.network && address <= this.last;
  }

  overlaps(other: Ipv4Cidr): boolean {
    return this.network <= other.last && other.network <= this.last;
  }

  toString(): string {
    return `${formatIpv4(this.network)}/${this.prefixLength}`;
  }
}
