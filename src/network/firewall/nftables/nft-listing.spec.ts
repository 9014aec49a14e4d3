import test from "ava";
import { mergeRanges, parseTableListing } from "./nft-listing.js";

/** Parts of what `nft -j list table inet rik-network` printed (nft 1.0.6), a counter rule added by hand at the end. */
const LISTING = JSON.stringify({
  nftables: [
    { metainfo: { version: "1.0.6", release_name: "Lester Gooch #5", json_schema_version: 1 } },
    { table: { family: "inet", name: "rik-network", handle: 1 } },
    { set: { family: "inet", name: "pool", table: "rik-network", type: "ipv4_addr", handle: 1, flags: ["interval"], elem: [{ prefix: { addr: "10.220.0.0", len: 24 } }] } },
    {
      set: {
        family: "inet",
        name: "egress_deny",
        table: "rik-network",
        type: "ipv4_addr",
        handle: 2,
        flags: ["interval"],
        elem: [{ prefix: { addr: "169.254.0.0", len: 16 } }, { prefix: { addr: "192.0.2.0", len: 25 } }, { prefix: { addr: "192.0.2.128", len: 25 } }],
      },
    },
    {
      map: {
        family: "inet",
        name: "ports",
        table: "rik-network",
        type: ["inet_proto", "inet_service"],
        handle: 3,
        map: "ipv4_addr . inet_service",
        elem: [[{ concat: ["tcp", 8080] }, { concat: ["10.220.0.2", 3000] }]],
      },
    },
    {
      map: {
        family: "inet",
        name: "bound_ports",
        table: "rik-network",
        type: ["ipv4_addr", "inet_proto", "inet_service"],
        handle: 4,
        map: "ipv4_addr . inet_service",
        elem: [[{ concat: ["198.51.100.7", "udp", 5353] }, { concat: ["10.220.0.2", 53] }]],
      },
    },
    { chain: { family: "inet", table: "rik-network", name: "nat_prerouting", handle: 6, type: "nat", hook: "prerouting", prio: -100, policy: "accept" } },
    { chain: { family: "inet", table: "rik-network", name: "guest_input", handle: 11 } },
    { rule: { family: "inet", table: "rik-network", chain: "nat_prerouting", handle: 15, comment: "rik-network:091c5fae7f815fa9", expr: [] } },
    { rule: { family: "inet", table: "rik-network", chain: "guest_input", handle: 33, comment: "rik-network:ce7bf43a9dc33e3f", expr: [{ return: null }] } },
    { rule: { family: "inet", table: "rik-network", chain: "guest_input", handle: 39, expr: [{ counter: { packets: 0, bytes: 0 } }] } },
  ],
});

test("chains with their hooks and their rules' comments, in order; a rule without a comment is undefined", (t) => {
  const listed = parseTableListing(LISTING);
  t.deepEqual(listed.chains.get("nat_prerouting"), {
    name: "nat_prerouting",
    base: { type: "nat", hook: "prerouting", priority: -100, policy: "accept" },
    comments: ["rik-network:091c5fae7f815fa9"],
  });
  t.deepEqual(listed.chains.get("guest_input"), { name: "guest_input", comments: ["rik-network:ce7bf43a9dc33e3f", undefined] });
});

test("map elements as the key and value texts we render, bound ports included", (t) => {
  const listed = parseTableListing(LISTING);
  t.deepEqual([...listed.maps.get("ports")!.elements], [["tcp . 8080", "10.220.0.2 . 3000"]]);
  t.deepEqual([...listed.maps.get("bound_ports")!.elements], [["198.51.100.7 . udp . 5353", "10.220.0.2 . 53"]]);
  t.deepEqual(listed.maps.get("bound_ports")!.type, ["ipv4_addr", "inet_proto", "inet_service"]);
  t.is(listed.maps.get("ports")!.data, "ipv4_addr . inet_service");
});

test("sets as merged ranges: two adjacent /25s compare equal to their /24", (t) => {
  const listed = parseTableListing(LISTING);
  t.deepEqual(listed.sets.get("egress_deny"), {
    name: "egress_deny",
    type: "ipv4_addr",
    flags: ["interval"],
    ranges: [
      [0xa9fe0000, 0xa9feffff],
      [0xc0000200, 0xc00002ff],
    ],
  });
});

test("other element forms: numeric protocols, elements wrapped for a comment, bare addresses and ranges in sets", (t) => {
  const listed = parseTableListing(
    JSON.stringify({
      nftables: [
        {
          map: {
            name: "ports",
            type: ["inet_proto", "inet_service"],
            map: "ipv4_addr . inet_service",
            elem: [[{ elem: { val: { concat: [17, 53] }, comment: "x" } }, { concat: ["10.220.0.6", 5353] }]],
          },
        },
        { set: { name: "egress_deny", type: "ipv4_addr", flags: ["interval"], elem: ["192.0.2.1", { range: ["192.0.2.2", "192.0.2.9"] }] } },
      ],
    }),
  );
  t.deepEqual([...listed.maps.get("ports")!.elements], [["udp . 53", "10.220.0.6 . 5353"]]);
  t.deepEqual(listed.sets.get("egress_deny")!.ranges, [[0xc0000201, 0xc0000209]]);
});

test("nft 1.1's form of a map's concatenated data type, an array, reads as 1.0's text", (t) => {
  const listed = parseTableListing(
    JSON.stringify({
      nftables: [{ map: { name: "ports", type: ["inet_proto", "inet_service"], map: ["ipv4_addr", "inet_service"], elem: [] } }],
    }),
  );
  t.is(listed.maps.get("ports")!.data, "ipv4_addr . inet_service");
});

test("output that is not nft's JSON is an error, not an empty table", (t) => {
  t.throws(() => parseTableListing("{}"), { message: /no nftables array/ });
  t.throws(() => parseTableListing("Error: ..."));
});

test("mergeRanges sorts, merges overlaps and touching ranges, keeps gaps", (t) => {
  t.deepEqual(mergeRanges([[10, 20], [0, 5], [6, 8], [15, 30], [40, 41]]), [[0, 8], [10, 30], [40, 41]]);
  t.deepEqual(mergeRanges([]), []);
});
