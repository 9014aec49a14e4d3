/**
 * struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags; },
 * then struct rtattr { u16 len; u16 type; } padded to 4. RTA_DST 1, RTA_OIF 4, RTA_TABLE 15,
 * RTM_NEWROUTE 24, RTM_GETROUTE 26, RT_TABLE_MAIN 254, RT_TABLE_LOCAL 255 (<linux/rtnetlink.h>).
 */
import test from "ava";
import { parseRoute, routeDump } from "./route-codec.js";

test("the route dump is RTM_GETROUTE with NLM_F_DUMP of an AF_INET rtmsg, answered by RTM_NEWROUTE", (t) => {
  const dump = routeDump();
  t.is(dump.request.type, 26);
  t.is(dump.request.flags, 0x300);
  t.is(
    dump.request.payload.toString("hex"),
    [
      "02", // rtm_family AF_INET
      "00", "00", "00", // rtm_dst_len, rtm_src_len, rtm_tos
      "00", "00", "00", "00", // rtm_table, rtm_protocol, rtm_scope, rtm_type: any
      "00000000", // rtm_flags
    ].join(""),
  );
  t.is(dump.answer, 24);
  t.is(dump.parse, parseRoute);
});

/** An AF_INET route to a /prefix in `table`, then its attributes. */
const route = (prefix: string, table: string, ...attributes: string[]) =>
  parseRoute(Buffer.from(["02", prefix, "00", "00", table, "02", "fd", "01", "00000000", ...attributes].join(""), "hex"));

test("a route of the main table: destination, prefix length and output interface", (t) => {
  const attributes = ["0800", "0f00", "fe000000", "0800", "0100", "0adc0000", "0800", "0400", "2a000000"]; // RTA_TABLE 254, RTA_DST 10.220.0.0, RTA_OIF 42
  t.deepEqual(route("1e", "fe", ...attributes), { destination: "10.220.0.0", prefixLength: 30, index: 42 });
  t.deepEqual(route("18", "fe", "0800", "0100", "0a000000"), { destination: "10.0.0.0", prefixLength: 24, index: undefined }, "rtm_table without RTA_TABLE; no RTA_OIF (e.g. multipath)");
  t.deepEqual(route("00", "fe", "0800", "0400", "02000000"), { destination: "0.0.0.0", prefixLength: 0, index: 2 }, "no RTA_DST: the default route");
});

test("routes of any other table are none of ours: RTA_TABLE decides over rtm_table", (t) => {
  t.is(route("20", "ff", "0800", "0100", "0adc0001", "0800", "0400", "2a000000"), undefined, "table local");
  t.is(route("18", "fe", "0800", "0f00", "e8030000"), undefined, "RTA_TABLE 1000");
  t.deepEqual(route("18", "fc", "0800", "0f00", "fe000000"), { destination: "0.0.0.0", prefixLength: 24, index: undefined }, "RTA_TABLE 254");
  t.is(parseRoute(Buffer.alloc(11)), undefined, "shorter than rtmsg");
});
