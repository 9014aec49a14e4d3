import test from "ava";
import { status } from "@grpc/grpc-js";
import { NetworkError, type NetworkErrorCode } from "../network/model/network-error.js";
import { statusFromError } from "./status-from-error.js";

const expected: [NetworkErrorCode, status][] = [
  ["invalid-argument", status.INVALID_ARGUMENT],
  ["not-found", status.NOT_FOUND],
  ["already-exists", status.ALREADY_EXISTS],
  ["failed-precondition", status.FAILED_PRECONDITION],
  ["resource-exhausted", status.RESOURCE_EXHAUSTED],
  ["unimplemented", status.UNIMPLEMENTED],
  ["unavailable", status.UNAVAILABLE],
  ["internal", status.INTERNAL],
];

for (const [networkCode, grpcCode] of expected) {
  test(`NetworkError ${networkCode} becomes ${status[grpcCode]} with its message`, (t) => {
    t.deepEqual(statusFromError(new NetworkError(networkCode, `boom ${networkCode}`)), {
      code: grpcCode,
      details: `boom ${networkCode}`,
    });
  });
}

test("a plain Error becomes INTERNAL and points to the service log", (t) => {
  t.deepEqual(statusFromError(new TypeError("x is undefined")), {
    code: status.INTERNAL,
    details: "internal error: x is undefined; see the service log",
  });
});

test("a thrown non-Error becomes INTERNAL too", (t) => {
  t.deepEqual(statusFromError("oops"), {
    code: status.INTERNAL,
    details: "internal error: oops; see the service log",
  });
});
