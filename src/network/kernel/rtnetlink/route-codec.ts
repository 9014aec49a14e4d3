/**
 * IPv4 routes (RTM_*ROUTE): the dump rik-network sends, and its answers decoded. Pure: no
 * socket. Numbers from <linux/rtnetlink.h>.
 */
import { AF_INET, type Dump, forEachAttribute, ipv4At, NLM_F_DUMP } from "./wire.js";

export const RTM_NEWROUTE = 24;
export const RTM_GETROUTE = 26;

/** struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type (u8 each), flags u32. */
const RTMSG_BYTES = 12;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_TABLE = 15;
/** The main routing table; the local and broadcast routes of table 255 mirror addresses. */
const RT_TABLE_MAIN = 254;

export interface RouteInfo {
  readonly destination: string;
  readonly prefixLength: number;
  /** Output interface index; undefined for routes without one (e.g. multipath). */
  readonly index: number | undefined;
}

/** Every IPv4 route of the main table, decoded by parseRoute (`ip -4 -j route show table main`). */
export function routeDump(): Dump<RouteInfo> {
  const header = Buffer.alloc(RTMSG_BYTES);
  header[0] = AF_INET;
  return { request: { type: RTM_GETROUTE, flags: NLM_F_DUMP, payload: header }, answer: RTM_NEWROUTE, parse: parseRoute };
}

/**
 * An RTM_NEWROUTE message's payload, for a route of the main table only (RTA_TABLE, else
 * rtm_table); undefined for any other table. No RTA_DST: the default route.
 */
export function parseRoute(data: Buffer): RouteInfo | undefined {
  if (data.length < RTMSG_BYTES) return undefined;
  let table: number = data[4]!;
  let destination = "0.0.0.0";
  let index: number | undefined;
  forEachAttribute(data, RTMSG_BYTES, data.length, (type, start, end) => {
    if (type === RTA_TABLE && end - start >= 4) table = data.readUInt32LE(start);
    else if (type === RTA_DST) destination = ipv4At(data, start, end) ?? destination;
    else if (type === RTA_OIF && end - start >= 4) index = data.readUInt32LE(start);
  });
  return table === RT_TABLE_MAIN ? { destination, prefixLength: data[1]!, index } : undefined;
}
