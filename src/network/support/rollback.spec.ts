import test from "ava";
import { captureLogger } from "../../../test/helpers/capture-logger.js";
import { rollBack, rollbackFailuresOf } from "./rollback.js";

test("every step runs, the original error is thrown with the failed steps, and each failure is logged with what removes its leftovers", async (t) => {
  const { logger, lines } = captureLogger();
  const ran: string[] = [];
  const original = new Error("kernel said no");
  const error = await t.throwsAsync(
    rollBack(
      original,
      [
        {
          name: "delete the rules",
          run: () => {
            ran.push("rules");
            throw new Error("rule delete failed");
          },
        },
        { name: "delete TAP rikaaaaaaaaaaaa", run: async () => void ran.push("tap") },
      ],
      { logger, instanceId: "a" },
    ),
  );
  t.is(error, original);
  t.deepEqual(ran, ["rules", "tap"]);
  t.deepEqual(rollbackFailuresOf(error).map((failure) => failure.step), ["delete the rules"]);
  t.deepEqual(lines, [
    {
      level: "warn",
      // True with --resync-interval 0 too: then the next start's reconcile is the one.
      message: "a rollback step failed; the next reconcile (the resync, or the next start) or a DESTROY removes what it left",
      instance_id: "a",
      step: "delete the rules",
      error: "rule delete failed",
      original_error: "kernel said no",
    },
  ]);
});
