/**
 * The nft backend's counterpart of faulty-iptables.ts: the service started with it refuses
 * the nftables transactions of one instance (test/helpers/faulty-nft-preload.ts), so that a
 * CREATE of that instance fails at its DNAT add, and the rollback's delete fails too, while
 * every other transaction reaches the real kernel.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO_ROOT } from "./netns.js";

const PRELOAD = path.join(REPO_ROOT, "test", "helpers", "faulty-nft-preload.ts");

export interface FaultyNft {
  /** For startService: the preload and its environment. */
  readonly nodeArgs: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Whether a delete of the instance's DNATs was refused. */
  deleteRefused(): boolean;
  /** Lets every transaction through from now on. */
  heal(): void;
}

export function faultyNft(t: { teardown(fn: () => void): void }, instanceId: string): FaultyNft {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-faulty-nft-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return {
    nodeArgs: ["--import", PRELOAD],
    env: { RIKT_FAULTY_NFT_INSTANCE: instanceId, RIKT_FAULTY_NFT_DIR: dir },
    deleteRefused: () => fs.existsSync(path.join(dir, "delete-refused")),
    heal: () => fs.writeFileSync(path.join(dir, "healed"), ""),
  };
}
