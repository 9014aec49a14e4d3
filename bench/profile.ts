/**
 * Where the time of one rik-network CREATE and DESTROY goes: each kernel step timed on its
 * own (bench/profile-worker.ts, in a fresh namespace per size), next to the end-to-end gRPC
 * latency measured against the service.
 */
import path from "node:path";
import { createNamespace, deleteNamespace, REPO_ROOT, uniqueName } from "../test/helpers/netns.js";
import { binariesFor } from "./baseline-riklet.js";
import type { FirewallBackend, IptablesBackend } from "./options.js";
import type { ProfileReport, ProfileRequest } from "./profile-worker.js";
import type { Progress } from "./progress.js";
import { runIn } from "./ns-run.js";

const WORKER = path.join(REPO_ROOT, "bench", "profile-worker.ts");

export interface ProfileOptions {
  readonly pool: string;
  readonly samples: number;
  /** The firewall backend whose steps are timed. */
  readonly firewall: FirewallBackend;
  /** iptables binaries of the iptables backend. */
  readonly backend: IptablesBackend;
  readonly workDir: string;
  readonly progress: Progress;
}

export async function profileAt(size: number, options: ProfileOptions): Promise<ProfileReport> {
  const ns = await createNamespace(uniqueName("rikt-bench"));
  try {
    options.progress.step(`profile ${options.firewall} @${size}: namespace ${ns}, ${options.samples} samples per step`);
    const bins = binariesFor(options.backend);
    const request: ProfileRequest = {
      pool: options.pool,
      size,
      samples: options.samples,
      firewall: options.firewall,
      restoreCommand: bins.restore,
      saveCommand: bins.save,
      workDir: options.workDir,
    };
    const { stdout } = await runIn(ns, process.execPath, ["--import", "tsx", WORKER, JSON.stringify(request)], { timeoutMs: 900_000 });
    const line = stdout.trim().split("\n").pop() ?? "";
    return JSON.parse(line) as ProfileReport;
  } finally {
    options.progress.step(`profile ${options.firewall} @${size}: deleting namespace ${ns}`);
    await deleteNamespace(ns);
  }
}
