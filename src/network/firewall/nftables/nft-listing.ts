/**
 * What `nft -j list table inet rik-network` shows, reduced to what reconcile compares. Pure.
 * Only JSON schema fields that nft 1.0 prints are read, in the forms 1.0 and 1.1 print them,
 * and unknown objects are ignored, so that a newer nft's listing still parses.
 */
import { cidrRange, type BaseHook } from "./nft-rules.js";

export interface ListedChain {
  readonly name: string;
  /** With the chain's policy; absent for a regular chain. */
  readonly base?: BaseHook & { readonly policy: string };
  /** Each rule's comment, in order; undefined for a rule without one. */
  readonly comments: readonly (string | undefined)[];
}

export interface ListedSet {
  readonly name: string;
  readonly type: string;
  readonly flags: readonly string[];
  /** The addresses it covers, as merged [first, last] ranges. */
  readonly ranges: readonly (readonly [number, number])[];
}

export interface ListedMap {
  readonly name: string;
  readonly type: readonly string[];
  readonly data: string;
  /** Key text (as instanceElements renders it) to value text. */
  readonly elements: ReadonlyMap<string, string>;
}

export interface ListedTable {
  readonly chains: ReadonlyMap<string, ListedChain>;
  readonly sets: ReadonlyMap<string, ListedSet>;
  readonly maps: ReadonlyMap<string, ListedMap>;
}

type Json = unknown;

const PROTOCOL_NAMES: Readonly<Record<number, string>> = { 6: "tcp", 17: "udp" };

function record(value: Json): Record<string, Json> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, Json>) : undefined;
}

/** An element's value with its wrapper (`{"elem": {"val": ...}}`, used when it has a comment or timeout) removed. */
function unwrap(value: Json): Json {
  const elem = record(record(value)?.["elem"]);
  return elem === undefined ? value : elem["val"];
}

function scalarText(value: Json): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return value;
  throw new Error(`unexpected element part ${JSON.stringify(value)}`);
}

/** `{"concat": ["tcp", 8080]}` as `tcp . 8080`; protocol numbers named as we write them. */
function concatText(value: Json, protocolAt: number | undefined): string {
  const parts = record(value)?.["concat"];
  const list = Array.isArray(parts) ? parts : [value];
  return list
    .map((part, at) => (at === protocolAt && typeof part === "number" ? (PROTOCOL_NAMES[part] ?? String(part)) : scalarText(part)))
    .join(" . ");
}

function addressValue(text: string): number {
  return cidrRange(text)[0];
}

/** A set element (an address, a prefix or a range) as the range it covers. */
function elementRange(value: Json): [number, number] {
  const element = unwrap(value);
  if (typeof element === "string") return cidrRange(element);
  const prefix = record(record(element)?.["prefix"]);
  if (prefix !== undefined) return cidrRange(`${scalarText(prefix["addr"])}/${scalarText(prefix["len"])}`);
  const range = record(element)?.["range"];
  if (Array.isArray(range) && range.length === 2) return [addressValue(scalarText(range[0])), addressValue(scalarText(range[1]))];
  throw new Error(`unexpected set element ${JSON.stringify(value)}`);
}

/** Ranges sorted and merged where they overlap or touch, so that two listings of the same addresses compare equal. */
export function mergeRanges(ranges: readonly (readonly [number, number])[]): [number, number][] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [first, last] of sorted) {
    const previous = merged.at(-1);
    if (previous !== undefined && first <= previous[1] + 1) previous[1] = Math.max(previous[1], last);
    else merged.push([first, last]);
  }
  return merged;
}

function typeList(value: Json): string[] {
  return Array.isArray(value) ? value.map(scalarText) : [scalarText(value)];
}

/** Parses the listing of our table; throws on output that is not nft's JSON. */
export function parseTableListing(text: string): ListedTable {
  const parsed = record(JSON.parse(text) as Json)?.["nftables"];
  if (!Array.isArray(parsed)) throw new Error("nft -j printed no nftables array");
  const chains = new Map<string, ListedChain & { comments: (string | undefined)[] }>();
  const sets = new Map<string, ListedSet>();
  const maps = new Map<string, ListedMap>();
  for (const object of parsed) {
    const entry = record(object);
    const chain = record(entry?.["chain"]);
    const rule = record(entry?.["rule"]);
    const set = record(entry?.["set"]);
    const map = record(entry?.["map"]);
    if (chain !== undefined) {
      const name = scalarText(chain["name"]);
      const base =
        chain["hook"] === undefined
          ? undefined
          : {
              type: scalarText(chain["type"]) as BaseHook["type"],
              hook: scalarText(chain["hook"]) as BaseHook["hook"],
              priority: Number(chain["prio"]),
              policy: chain["policy"] === undefined ? "accept" : scalarText(chain["policy"]),
            };
      chains.set(name, { name, ...(base === undefined ? {} : { base }), comments: chains.get(name)?.comments ?? [] });
    } else if (rule !== undefined) {
      const name = scalarText(rule["chain"]);
      const listed = chains.get(name) ?? { name, comments: [] };
      chains.set(name, listed);
      listed.comments.push(typeof rule["comment"] === "string" ? rule["comment"] : undefined);
    } else if (map !== undefined) {
      const type = typeList(map["type"]);
      const protocolAt = type.indexOf("inet_proto");
      const elements = new Map<string, string>();
      for (const element of Array.isArray(map["elem"]) ? map["elem"] : []) {
        if (!Array.isArray(element) || element.length !== 2) throw new Error(`unexpected map element ${JSON.stringify(element)}`);
        elements.set(concatText(unwrap(element[0]), protocolAt === -1 ? undefined : protocolAt), concatText(element[1], undefined));
      }
      const name = scalarText(map["name"]);
      // nft 1.1 and later print a concatenated data type as an array, 1.0 as "a . b".
      maps.set(name, { name, type, data: typeList(map["map"]).join(" . "), elements });
    } else if (set !== undefined) {
      const name = scalarText(set["name"]);
      const flags = Array.isArray(set["flags"]) ? set["flags"].map(scalarText) : [];
      const elements = Array.isArray(set["elem"]) ? set["elem"] : [];
      sets.set(name, { name, type: typeList(set["type"]).join(" . "), flags, ranges: mergeRanges(elements.map(elementRange)) });
    }
  }
  return { chains, sets, maps };
}
