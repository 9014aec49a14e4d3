/**
 * The layers of src/network, as folders, and what each may import. A strategy is a folder
 * under strategies/ and a firewall backend a folder under firewall/: neither imports another
 * of its kind, and nothing below them imports them, but the composition root (index.ts).
 * The rest of src sees src/network only through its entry points.
 */
import test from "ava";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL(".", import.meta.url));
const src = fileURLToPath(new URL("..", import.meta.url));

/** What each layer is, and which layers its sources may import from. */
const allowed: Record<string, readonly string[]> = {
  model: ["model"],
  concurrency: ["concurrency", "model"],
  kernel: ["kernel", "concurrency", "model"],
  support: ["support", "model"],
  node: ["node", "kernel", "concurrency", "model"],
  "contract: firewall": ["model"],
  // StartDumps, which a strategy's reconcile is given, holds the kernel's LinkInfo/AddressInfo.
  "contract: strategy": ["model", "contract: firewall", "node", "kernel"],
  plane: ["plane", "contract: strategy", "contract: firewall", "node", "concurrency", "support", "model"],
};

const isSpec = (path: string) => /\.spec\.(ts|mjs)$/.test(path);

/**
 * The layer of a file, by its path under src/network. A file directly under src/network,
 * strategies/ or firewall/ that is not the root or a contract is in none: it throws.
 */
function layerOf(path: string): string {
  const parts = path.replace(/\.js$/, ".ts").split("/");
  const [top, second] = parts as [string, string | undefined];
  const stray = () => new Error(`${path} sits in no layer: move it into a layer's folder, or add its layer to this spec`);
  // A spec directly under src/network (this one) tests the tree as a whole.
  if (parts.length === 1) {
    if (top === "index.ts" || isSpec(top)) return "root";
    throw stray();
  }
  if (top === "strategies") {
    if (parts.length > 2) return `strategy ${second}`;
    if (second === "workload-strategy.ts") return "contract: strategy";
    throw stray();
  }
  if (top === "firewall") {
    if (parts.length > 2) return `backend ${second}`;
    if (second === "firewall.ts") return "contract: firewall";
    throw stray();
  }
  return top;
}

function allowedFrom(layer: string): readonly string[] | "anything" {
  if (layer === "root") return "anything";
  if (layer.startsWith("strategy ")) return [layer, "contract: strategy", "contract: firewall", "node", "kernel", "concurrency", "support", "model"];
  if (layer.startsWith("backend ")) return [layer, "contract: firewall", "kernel", "concurrency", "support", "model"];
  const list = allowed[layer];
  if (list === undefined) throw new Error(`${layer} is not a layer: add it to this spec, or move the file into one`);
  return list;
}

/** Every .ts and .mjs file under `dir` of `base`, specs included, as paths relative to `base`. */
async function files(base: string, dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(join(base, dir), { withFileTypes: true })) {
    const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory()) found.push(...(await files(base, path)));
    else if (/\.(ts|mjs)$/.test(entry.name)) found.push(path);
  }
  return found;
}

/**
 * Every module `text` names, in either quotes: in a `from` clause (imports and re-exports), a
 * side-effect import, `import()`, and `new URL()` (a module run in a worker or another process).
 * Directories, as in `new URL(".", import.meta.url)`, are not modules.
 */
function specifiers(text: string): string[] {
  return [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+|\bnew URL\(\s*)(["'])([^"'\n]+)\1/g)]
    .map((match) => match[2]!)
    .filter((specifier) => specifier !== "." && specifier !== ".." && !specifier.endsWith("/"));
}

test("every file of src/network sits in a layer, and imports only from the layers below it", async (t) => {
  const all = await files(root, "");
  t.true(all.filter((file) => !isSpec(file)).length > 30, "the walk finds the sources");
  t.true(all.filter(isSpec).length > 20, "the walk finds the specs");
  for (const file of all) {
    const spec = isSpec(file);
    // A spec may import what its source may, plus the test helpers and the test runner.
    const layer = layerOf(file);
    const may = allowedFrom(layer);
    for (const specifier of specifiers(await readFile(join(root, file), "utf8"))) {
      t.false(specifier.startsWith("@grpc/"), `${file}: ${specifier}`);
      if (!spec) t.not(specifier, "ava", `${file}: only a spec imports the test runner`);
      if (!specifier.startsWith(".")) continue;
      const target = normalize(join(dirname(file), specifier));
      if (target.startsWith("..")) {
        // Outside src/network: only the logger (never the server, the metrics or src/gen), and for a spec test/.
        if (!(spec && target.startsWith("../../test/"))) t.is(target, "../logger.js", `${file} imports ${specifier} from outside src/network`);
        continue;
      }
      const targetLayer = layerOf(target);
      if (may !== "anything") t.true(may.includes(targetLayer), `${file} (${layer}) imports ${specifier} (${targetLayer})`);
    }
  }
});

/** What src/server, src/cli, src/config and src/metrics may import from src/network: its entry points. */
const entryPoints = [/^index\.js$/, /^model\/[^/]+\.js$/, /^plane\/network-plane\.js$/];
/** And, by the importing file or folder (relative to src), a few modules of the layers below. */
const alsoAllowed: readonly (readonly [string, string])[] = [
  // The defaults and bounds of flags: --egress-deny's default list, --tap-owner/--tap-group's largest id.
  ["config/", "firewall/firewall.js"],
  ["config/", "kernel/tun-ids.mjs"],
  // The premise of the test that the CLI loads no FFI: the TAP ioctls' module does.
  ["cli/run-cli.spec.ts", "kernel/tun-ioctl.mjs"],
];

test("the rest of src imports src/network only through its entry points", async (t) => {
  let seen = 0;
  for (const dir of ["server", "cli", "config", "metrics"]) {
    for (const file of await files(src, dir)) {
      for (const specifier of specifiers(await readFile(join(src, file), "utf8"))) {
        if (!specifier.startsWith(".")) continue;
        const target = normalize(join(dirname(file), specifier));
        if (!target.startsWith("network/")) continue;
        seen++;
        const inNetwork = target.slice("network/".length);
        const ok = entryPoints.some((entry) => entry.test(inNetwork)) || alsoAllowed.some(([from, to]) => file.startsWith(from) && inNetwork === to);
        t.true(ok, `${file} imports ${specifier}: import it through src/network/index.ts, or move what it needs to src/network/model`);
      }
    }
  }
  t.true(seen > 10, "the walk finds the imports of src/network");
});
