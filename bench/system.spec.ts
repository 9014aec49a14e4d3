// Unit spec of the PATH the bench runs everything with (no root, no kernel).
import test from "ava";
import { withoutPackageBins } from "./system.js";

test("withoutPackageBins drops npm's node_modules directories and keeps the system's, in order", (t) => {
  const npmPath = [
    "/work/repo/node_modules/.bin",
    "/work/node_modules/.bin",
    "/usr/lib/node_modules/npm/node_modules/@npmcli/run-script/lib/node-gyp-bin",
    "/usr/local/sbin",
    "/usr/sbin",
    "/usr/bin",
    "",
  ].join(":");
  t.is(withoutPackageBins(npmPath), "/usr/local/sbin:/usr/sbin:/usr/bin");
  t.is(withoutPackageBins("/opt/node_modules_backup/bin:/bin"), "/opt/node_modules_backup/bin:/bin");
});
