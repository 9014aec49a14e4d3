import { NetworkError } from "./network-error.js";

/** Instance ids reach rule comments and log lines, so only a safe, bounded alphabet is accepted. */
export const INSTANCE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function validateInstanceId(instanceId: string): string {
  if (!INSTANCE_ID_PATTERN.test(instanceId)) {
    const shown = JSON.stringify(instanceId.length > 40 ? instanceId.slice(0, 40) + "…" : instanceId);
    throw new NetworkError(
      "invalid-argument",
      `invalid instance_id ${shown}: use 1 to 128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit`,
    );
  }
  return instanceId;
}
