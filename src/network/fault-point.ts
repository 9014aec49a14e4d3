/**
 * Test-only crash injection. With RIK_NETWORK_TEST_KILL_AT_STEP=N in the environment the
 * process SIGKILLs itself at the Nth fault point it passes, so that tests can prove that a
 * crash between any two steps of CREATE or DESTROY is recovered from. Without it, a fault
 * point only counts.
 */
const killAt = Number(process.env["RIK_NETWORK_TEST_KILL_AT_STEP"] ?? 0);
let passed = 0;

export function faultPoint(_step: string): void {
  passed++;
  if (killAt > 0 && passed === killAt) {
    process.kill(process.pid, "SIGKILL");
    // SIGKILL to oneself lands before the next instruction in practice; never run past it.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  }
}
