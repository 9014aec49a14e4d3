import test from "ava";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const src = fileURLToPath(new URL("..", import.meta.url));

/** Every `import ... from "..."` statement of the non-test sources of `dir`, with its file. */
async function imports(dir: string): Promise<{ file: string; statement: string; from: string }[]> {
  const files = (await readdir(join(src, dir))).filter((name) => /\.(ts|mjs)$/.test(name) && !name.endsWith(".spec.ts"));
  const found = [];
  for (const file of files) {
    const text = await readFile(join(src, dir, file), "utf8");
    for (const match of text.matchAll(/^(?:import|export)\b[^;]*?from\s+"([^"]+)";/gms)) {
      found.push({ file: `${dir}/${file}`, statement: match[0], from: match[1] ?? "" });
    }
  }
  return found;
}

test("src/metrics takes only types from src/network, and nothing from the server or gRPC", async (t) => {
  for (const { file, statement, from } of await imports("metrics")) {
    if (from.startsWith("../network/")) t.regex(statement, /^(import|export) type /, `${file}: ${statement}`);
    t.false(from.startsWith("../server/") || from.startsWith("@grpc/") || from.startsWith("../gen/"), `${file}: ${statement}`);
  }
});

