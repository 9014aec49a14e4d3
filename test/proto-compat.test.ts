/**
 * CI's wire-compatibility check (scripts/check-proto-compat, buf breaking) on a throwaway
 * clone of this repository: it passes as the protocol is, and fails on a renumbered field,
 * even when later commits follow the one that renumbered it.
 */
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { REPO_ROOT } from "./helpers/netns.js";

const PROTO = "proto/rik/network/v1/workload_network.proto";
const git = (cwd: string, ...args: string[]) =>
  execa("git", ["-c", "user.name=test", "-c", "user.email=test@rik-network.invalid", ...args], { cwd });

test("buf breaking passes on the protocol as it is, and catches a renumbered field in any commit", async (t) => {
  const clone = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-proto-"));
  t.teardown(() => fs.rmSync(clone, { recursive: true, force: true }));
  await execa("git", ["clone", "--quiet", REPO_ROOT, clone]);
  // The script and the protos as they are in this work tree (committed or not), on top of the clone's history.
  fs.cpSync(path.join(REPO_ROOT, "scripts"), path.join(clone, "scripts"), { recursive: true });
  fs.cpSync(path.join(REPO_ROOT, "proto"), path.join(clone, "proto"), { recursive: true });
  fs.cpSync(path.join(REPO_ROOT, "buf.yaml"), path.join(clone, "buf.yaml"));
  fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(clone, "node_modules"));
  await git(clone, "add", "-A", "scripts", "proto", "buf.yaml");
  await git(clone, "commit", "--quiet", "--allow-empty", "-m", "the work tree");
  const check = () => execa("bash", ["scripts/check-proto-compat"], { cwd: clone, reject: false, all: true });

  const clean = await check();
  t.is(clean.exitCode, 0, String(clean.all));

  const proto = path.join(clone, PROTO);
  const text = fs.readFileSync(proto, "utf8");
  t.regex(text, /string guest_ip = 3;/);
  fs.writeFileSync(proto, text.replace("string guest_ip = 3;", "string guest_ip = 13;"));
  const uncommitted = await check();
  t.is(uncommitted.exitCode, 1);
  t.regex(String(uncommitted.all), /Previously present field "3" with name "guest_ip" on message "FunctionNetwork" was deleted/);

  await git(clone, "commit", "--quiet", "-am", "renumber guest_ip");
  await git(clone, "commit", "--quiet", "--allow-empty", "-m", "a later commit");
  const committed = await check();
  t.is(committed.exitCode, 1);
  t.regex(String(committed.all), /commit [0-9a-f]+ renumber guest_ip breaks the wire format/);
});
