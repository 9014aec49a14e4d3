/**
 * Preloaded into the service (`node --import tsx --import test/helpers/faulty-nft-preload.ts
 * src/main.ts`, see faulty-nft.ts): the nft backend's transactions for the instance named in
 * RIKT_FAULTY_NFT_INSTANCE are refused before they reach libnftables, as the kernel refuses
 * a transaction, while every other one reaches the real kernel. The nft backend runs no
 * binary per transaction (libnftables is in-process), so this is its faulty-iptables.ts.
 * Writes RIKT_FAULTY_NFT_DIR/delete-refused when it refuses a delete; lets everything
 * through once RIKT_FAULTY_NFT_DIR/healed exists.
 */
import fs from "node:fs";
import path from "node:path";
import { KernelError } from "../../src/network/kernel/kernel-error.js";
import { Libnftables } from "../../src/network/firewall/nftables/libnftables.js";

const instanceId = process.env["RIKT_FAULTY_NFT_INSTANCE"];
const dir = process.env["RIKT_FAULTY_NFT_DIR"];

if (instanceId !== undefined && dir !== undefined) {
  const run = Libnftables.prototype.run;
  Libnftables.prototype.run = function faultyRun(this: Libnftables, operation: string, commands: string): void {
    if (operation.includes(`instance "${instanceId}"`) && !fs.existsSync(path.join(dir, "healed"))) {
      if (commands.startsWith("delete ")) {
        fs.writeFileSync(path.join(dir, "delete-refused"), "");
        throw new KernelError(operation, undefined, { detail: "DNAT delete refused (injected)" });
      }
      throw new KernelError(operation, undefined, { detail: "DNAT add refused (injected)" });
    }
    run.call(this, operation, commands);
  };
}
