import test from "ava";
import { status } from "@grpc/grpc-js";
import { captureLogger } from "../../test/helpers/capture-logger.js";
import { printableInstanceId } from "../network/model/instance-id.js";
import { NetworkError } from "../network/model/network-error.js";
import { logRpc } from "./log-rpc.js";

test("a valid instance id is logged as it is", (t) => {
  const { logger, lines } = captureLogger();
  logRpc(logger, { method: "Apply", instanceId: "fn-1.a_b", code: status.OK, durationMs: 1.5 });
  t.like(lines[0], { message: "rpc", method: "Apply", instance_id: "fn-1.a_b", code: "OK", duration_ms: 1.5 });
});

test("a hostile instance id reaches the log line cut and escaped, never raw", (t) => {
  const { logger, lines } = captureLogger();
  const hostile = `evil\u001b[31m\u202e\n{"level":"error"}${"x".repeat(1_000_000)}`;
  logRpc(logger, { method: "Apply", instanceId: hostile, code: status.INVALID_ARGUMENT, durationMs: 1, error: new NetworkError("invalid-argument", "invalid instance_id") });
  t.is(lines.length, 1);
  const logged = lines[0]!["instance_id"] as string;
  t.true(logged.length < 200, `${logged.length} characters`);
  t.regex(logged, /^[\x20-\x7e…]+$/u, "printable ASCII only");
  t.true(logged.startsWith('"evil\\u001b[31m\\u202e\\u000a{\\"level\\":\\"error\\"}xxx'), logged);
  t.true(logged.endsWith(`… (${hostile.length} characters)`), logged);
});

test("printableInstanceId: valid ids unchanged, short invalid ones quoted and escaped whole", (t) => {
  t.is(printableInstanceId("a".repeat(128)), "a".repeat(128));
  t.is(printableInstanceId(""), '""');
  t.is(printableInstanceId("a b"), '"a b"');
  t.is(printableInstanceId("a\u0000b"), '"a\\u0000b"');
  t.is(printableInstanceId("ü"), '"\\u00fc"');
  t.is(printableInstanceId("😀"), '"\\ud83d\\ude00"');
  t.is(printableInstanceId("x".repeat(129)), `"${"x".repeat(40)}"… (129 characters)`);
});
