/**
 * Preloaded into the service (`node --import tsx --import test/helpers/kill-at-step.ts
 * src/main.ts`, see `ServiceOptions.killAtStep`): with RIKT_KILL_AT_STEP=N in the
 * environment, the service SIGKILLs itself at the Nth fault point it passes, after writing
 * that point's step name to RIKT_KILL_STEP_FILE, so that the test knows where it died.
 */
import fs from "node:fs";
import { setFaultHook } from "../../src/network/support/fault-point.js";

const killAt = Number(process.env["RIKT_KILL_AT_STEP"] ?? 0);
const stepFile = process.env["RIKT_KILL_STEP_FILE"];
let passed = 0;

if (killAt > 0) {
  setFaultHook((step) => {
    passed++;
    if (passed !== killAt) return;
    if (stepFile !== undefined) fs.writeFileSync(stepFile, step);
    process.kill(process.pid, "SIGKILL");
    // SIGKILL to oneself lands before the next instruction in practice; never run past it.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  });
}
