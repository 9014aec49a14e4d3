// Unit spec of the PATH the bench runs everything with (no root, no kernel).
import test from "ava";
import { cpuMsOfStat, withoutPackageBins } from "./system.js";

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

test("cpuMsOfStat adds utime and stime (USER_HZ ticks), whatever the command name holds", (t) => {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
  t.is(cpuMsOfStat("4242 (node (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 11 0 99 0 0"), 3250);
});
