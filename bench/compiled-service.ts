/**
 * The service as it is deployed: compiled JavaScript (`node dist/main.js serve`), not the
 * TypeScript sources under tsx. tsx transpiles every module at start and keeps its loader in
 * memory, which a node never pays: under tsx the restart figure measured tsx (about 1.5 s of
 * 2.5 s at 5000 instances) and RSS grew by some 70 MB. So the bench builds dist/ when it is
 * missing or older than the sources, and starts the service from it.
 */
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { execa } from "execa";
import { REPO_ROOT } from "../test/helpers/netns.js";
import { COMPILED_MAIN, startService, type ServiceOptions, type ServiceProcess } from "../test/helpers/service-process.js";

/** What `npm run build` compiles from; a change to any of them makes dist/ stale. */
const BUILD_INPUTS = ["src", "tsconfig.json", "tsconfig.build.json", "package.json", "package-lock.json"];

/** Newest modification time (ms) among `paths`, directories walked recursively; 0 if none exists. */
export function newestMtimeMs(paths: readonly string[]): number {
  let newest = 0;
  for (const entry of paths) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(entry);
    } catch {
      continue;
    }
    if (stat.isDirectory()) {
      for (const name of fs.readdirSync(entry, { recursive: true }) as string[]) {
        const child = fs.statSync(path.join(entry, name));
        if (child.isFile()) newest = Math.max(newest, child.mtimeMs);
      }
    } else {
      newest = Math.max(newest, stat.mtimeMs);
    }
  }
  return newest;
}

/** Whether dist/ must be (re)built: no compiled entry point, or a source newer than it. */
export function needsBuild(compiledMtimeMs: number | undefined, newestSourceMtimeMs: number): boolean {
  return compiledMtimeMs === undefined || newestSourceMtimeMs > compiledMtimeMs;
}

/**
 * Runs `npm run build` (`tsc -p tsconfig.build.json`) when dist/ is missing or stale.
 * tsc runs directly, not through npm, so that its errors are in the thrown message.
 * Returns whether it built.
 */
export async function ensureBuilt(log: (line: string) => void): Promise<boolean> {
  let compiled: number | undefined;
  try {
    compiled = fs.statSync(COMPILED_MAIN).mtimeMs;
  } catch {
    compiled = undefined;
  }
  const sources = newestMtimeMs(BUILD_INPUTS.map((name) => path.join(REPO_ROOT, name)));
  if (!needsBuild(compiled, sources)) {
    log("dist/ is up to date with src/: not rebuilding");
    return false;
  }
  log(compiled === undefined ? "dist/main.js missing: npm run build" : "src/ changed since the last build: npm run build");
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const result = await execa(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: REPO_ROOT, reject: false, all: true });
  if (result.exitCode !== 0) throw new Error(`npm run build failed (exit code ${result.exitCode}):\n${String(result.all ?? "").trim()}`);
  return true;
}

/**
 * `ip netns exec <nodeNs> node dist/main.js serve ...`, resolved once the service is ready,
 * killed when the node namespace is deleted. Call `ensureBuilt` first.
 */
export function startCompiledService(options: ServiceOptions & { socketPath: string }): Promise<ServiceProcess> {
  return startService({ ...options, compiled: true });
}
