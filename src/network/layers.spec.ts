/**
 * The layers of src/network, as folders, and what each may import. A strategy is a folder
 * under strategies/ and a firewall backend a folder under firewall/: neither imports another
 * of its kind, and nothing below them imports them, but the composition root (index.ts).
 */
import test from "ava";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL(".", import.meta.url));

/** What each layer is, and which layers its sources may import from. */
const allowed: Record<string, readonly string[]> = {
  model: ["model"],
  concurrency: ["concurrency", "model"],
  kernel: ["kernel", "concurrency", "model"],
  support: ["support", "model"],
  node: ["node", "kernel", "concurrency", "model"],
  "contract: firewall": ["model"],
  "contract: strategy": ["model", "contract: firewall", "node"],
  plane: ["plane", "contract: strategy", "contract: firewall", "node", "concurrency", "support", "model"],
};

/** The layer of a source file, by its path under src/network. */
function layerOf(path: string): string {
  const [top, second] = path.replace(/\.js$/, ".ts").split("/");
  if (path === "index.ts" || path === "index.js") return "root";
  if (top === "strategies") return second === "workload-strategy.ts" ? "contract: strategy" : `strategy ${second}`;
  if (top === "firewall") return second === "firewall.ts" ? "contract: firewall" : `backend ${second}`;
  return top!;
}

function allowedFrom(layer: string): readonly string[] | "anything" {
  if (layer === "root") return "anything";
  if (layer.startsWith("strategy ")) return [layer, "contract: strategy", "contract: firewall", "node", "kernel", "concurrency", "support", "model"];
  if (layer.startsWith("backend ")) return [layer, "contract: firewall", "kernel", "concurrency", "support", "model"];
  const list = allowed[layer];
  if (list === undefined) throw new Error(`${layer} is not a layer: add it to this spec, or move the file into one`);
  return list;
}

async function sources(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(join(root, dir), { withFileTypes: true })) {
    const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory()) found.push(...(await sources(path)));
    else if (/\.(ts|mjs)$/.test(entry.name) && !/\.spec\.(ts|mjs)$/.test(entry.name)) found.push(path);
  }
  return found;
}

/** Every `from "..."` and `import("...")` specifier of `text`. */
function specifiers(text: string): string[] {
  return [...text.matchAll(/(?:from\s+|import\s*\(\s*|new URL\(\s*)"([^"]+)"/g)].map((match) => match[1]!);
}

test("every source of src/network sits in a layer, and imports only from the layers below it", async (t) => {
  const files = await sources("");
  t.true(files.length > 30, "the walk finds the sources");
  for (const file of files) {
    const layer = layerOf(file);
    const may = allowedFrom(layer);
    for (const specifier of specifiers(await readFile(join(root, file), "utf8"))) {
      t.false(specifier.startsWith("@grpc/"), `${file}: ${specifier}`);
      if (!specifier.startsWith(".")) continue;
      const target = normalize(join(dirname(file), specifier));
      if (target.startsWith("..")) {
        // Outside src/network: only the logger (never the server, the metrics or src/gen).
        t.is(target, "../logger.js", `${file} imports ${specifier} from outside src/network`);
        continue;
      }
      const targetLayer = layerOf(target);
      if (may !== "anything") t.true(may.includes(targetLayer), `${file} (${layer}) imports ${specifier} (${targetLayer})`);
    }
  }
});

test("the composition root is the only place that names a strategy or a backend", async (t) => {
  for (const file of await sources("")) {
    if (layerOf(file) === "root") continue;
    for (const specifier of specifiers(await readFile(join(root, file), "utf8"))) {
      if (!specifier.startsWith(".")) continue;
      const target = layerOf(normalize(join(dirname(file), specifier)));
      const own = layerOf(file);
      if (target.startsWith("strategy ") || target.startsWith("backend ")) t.is(target, own, `${file} imports ${specifier}`);
    }
  }
});
