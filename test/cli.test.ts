/**
 * The `rik-network` command line against the real service in a node namespace: what an
 * operator types, what it prints (tables, or proto JSON with --json), and its exit codes.
 */
import test from "ava";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { runCli, startCli } from "./helpers/cli-process.js";
import { delay, Topology } from "./helpers/netns.js";
import { startService } from "./helpers/service-process.js";
import { functionDefinition, WorkloadClient } from "./helpers/workload-client.js";

async function startNode(t: { teardown(fn: () => unknown): void }) {
  const topology = await Topology.create({ teardown: t });
  const service = await startService({ nodeNs: topology.node });
  t.teardown(() => service.stop());
  const socket = ["--socket", service.socketPath];
  const cli = (args: readonly string[], options?: { input?: string }) => runCli(topology.node, [...args, ...socket], options);
  return { topology, service, cli };
}

function workloadFile(t: { teardown(fn: () => unknown): void }, definition: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rikt-cli-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "workload.json");
  fs.writeFileSync(file, definition);
  return file;
}

test("apply, get, list and destroy print tables; --json prints the responses as proto JSON", async (t) => {
  const { service, cli } = await startNode(t);
  const file = workloadFile(t, functionDefinition({ exposure: { port: 8080, targetPort: 3000 } }));

  const applied = await cli(["apply", "-f", file, "--id", "fn-cli"]);
  t.is(applied.exitCode, 0, applied.stderr);
  t.regex(applied.stdout, /^instance: {3}fn-cli\nkind: {7}Function\nstatus: {5}RUNNING\ntap: {8}rik[a-z2-7]{12}\nguest ip: {3}10\.220\.0\.2\/30\ngateway: {4}10\.220\.0\.1\nmask: {7}255\.255\.255\.252\nguest mac: {2}[0-9a-f:]{17}\nmtu: {8}1500\nports: {6}8080->3000\/tcp\nboot arg: {3}ip=10\.220\.0\.2::10\.220\.0\.1:255\.255\.255\.252::eth0:off\n$/);

  // --json is the proto JSON of the same answer the gRPC API gives.
  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());
  const viaApi = await client.get("fn-cli");
  const got = await cli(["get", "fn-cli", "--json"]);
  t.is(got.exitCode, 0);
  const json = JSON.parse(got.stdout) as { network: Record<string, unknown> & { function: Record<string, unknown> } };
  t.like(json.network, { instanceId: "fn-cli", kind: "Function", status: "RUNNING" });
  t.like(json.network.function, {
    tapName: viaApi.network.value?.tapName,
    guestIp: "10.220.0.2",
    guestMac: viaApi.network.value?.guestMac,
    ports: [{ protocol: "PROTOCOL_TCP", hostPort: 8080, guestPort: 3000 }],
  });
  t.is((await cli(["apply", "-f", file, "--id", "fn-cli", "--json"])).stdout, got.stdout, "a repeated CREATE answers the same network");

  const listed = await cli(["list"]);
  const [header, row, ...more] = listed.stdout.trimEnd().split("\n");
  t.regex(header ?? "", /^INSTANCE +KIND +STATUS +TAP +GUEST IP +GATEWAY +GUEST MAC +PORTS$/);
  t.regex(row ?? "", /^fn-cli +Function +RUNNING +rik[a-z2-7]{12} +10\.220\.0\.2\/30 +10\.220\.0\.1 +[0-9a-f:]{17} +8080->3000\/tcp$/);
  t.deepEqual(more, []);
  t.deepEqual((JSON.parse((await cli(["list", "--json"])).stdout) as { networks: unknown[] }).networks, [json.network]);

  const destroyed = await cli(["destroy", "fn-cli"]);
  t.is(destroyed.exitCode, 0);
  t.regex(destroyed.stdout, /^instance: +fn-cli\n.*\nstatus: +TERMINATED\n/);
  t.deepEqual(await cli(["list"]), { exitCode: 0, stdout: "no instances on this node\n", stderr: "" });
  t.deepEqual(JSON.parse((await cli(["destroy", "fn-cli", "--json"])).stdout), { network: { instanceId: "fn-cli", status: "TERMINATED" } });
});

test("apply -f - reads the workload from stdin, and apply --destroy needs no workload", async (t) => {
  const { cli } = await startNode(t);
  const created = await cli(["apply", "-f", "-", "--id", "fn-stdin", "--json"], { input: functionDefinition() });
  t.is(created.exitCode, 0, created.stderr);
  t.like(JSON.parse(created.stdout), { network: { instanceId: "fn-stdin", status: "RUNNING" } });
  const destroyed = await cli(["apply", "--id", "fn-stdin", "--destroy", "--json"]);
  t.like(JSON.parse(destroyed.stdout), { network: { instanceId: "fn-stdin", status: "TERMINATED" } });
});

test("errors exit non-zero and print the gRPC code name and the service's message", async (t) => {
  const { cli } = await startNode(t);
  t.deepEqual(await cli(["get", "nope"]), {
    exitCode: 1,
    stdout: "",
    stderr: 'rik-network: NOT_FOUND: no instance "nope" on this node; List shows the instances it has\n',
  });
  const bad = await cli(["apply", "-f", "-", "--id", "fn-bad"], { input: "{not json" });
  t.is(bad.exitCode, 1);
  t.regex(bad.stderr, /^rik-network: INVALID_ARGUMENT: /);
  const pod = await cli(["apply", "-f", "-", "--id", "pod-1"], { input: JSON.stringify({ apiVersion: "v0", kind: "Pod", name: "p", spec: { containers: [] } }) });
  t.is(pod.exitCode, 1);
  t.regex(pod.stderr, /^rik-network: UNIMPLEMENTED: Pod workloads are not supported/);
  const usage = await cli(["get"]);
  t.is(usage.exitCode, 2);
  t.is(usage.stderr, 'rik-network: expected INSTANCE_ID, got none\nRun "rik-network get --help" for usage.\n');
});

test("health prints SERVING; watch prints a line per event until Ctrl-C, or proto JSON lines with --json", async (t) => {
  const { topology, service, cli } = await startNode(t);
  t.deepEqual(await cli(["health"]), { exitCode: 0, stdout: "SERVING\n", stderr: "" });
  t.deepEqual(await cli(["health", "--json", "--service", "rik.network.v1.WorkloadNetwork"]), {
    exitCode: 0,
    stdout: '{\n  "status": "SERVING"\n}\n',
    stderr: "",
  });

  const client = new WorkloadClient(service.address);
  t.teardown(() => client.close());
  await client.create("fn-w1", functionDefinition());
  const watch = startCli(topology.node, ["watch", "--socket", service.socketPath]);
  const jsonWatch = startCli(topology.node, ["watch", "--json", "--socket", service.socketPath]);
  t.teardown(() => watch.stop("SIGKILL"));
  t.teardown(() => jsonWatch.stop("SIGKILL"));
  const line = (instance: string, status: string) => new RegExp(`^\\S+Z  test-node  ${instance}  ${status}(  |$)`);
  const existing = await watch.output.waitForLine((text) => line("fn-w1", "RUNNING").test(text), 20_000, "fn-w1 RUNNING");
  t.regex(existing, /  tap=rik[a-z2-7]{12} guest=10\.220\.0\.2\/30 ports=-$/);
  await jsonWatch.output.waitForLine((text) => text.includes('"instanceId":"fn-w1"'), 20_000, "fn-w1 as JSON");

  await client.destroy("fn-w1");
  await watch.output.waitForLine((text) => line("fn-w1", "TERMINATED").test(text), 10_000, "fn-w1 TERMINATED");
  const terminated = await jsonWatch.output.waitForLine((text) => text.includes('"status":"TERMINATED"'), 10_000, "TERMINATED as JSON");
  t.like(JSON.parse(terminated), { identifier: "test-node", instance: { instanceId: "fn-w1", status: "TERMINATED" } });
  t.deepEqual(
    watch.output.stdout.map((text) => text.split("  ").slice(2, 4).join(" ")),
    ["fn-w1 RUNNING", "fn-w1 DESTROYING", "fn-w1 TERMINATED"],
  );
  t.deepEqual(watch.output.stderr, [`watching unix:${service.socketPath}; Ctrl-C to stop`]);

  t.is(await watch.stop("SIGINT"), 0, "Ctrl-C ends watch with success");
  t.is(await jsonWatch.stop("SIGTERM"), 0);
});

test("watch exits 1 with UNAVAILABLE when the service stops", async (t) => {
  const { topology, service } = await startNode(t);
  const watch = startCli(topology.node, ["watch", "--socket", service.socketPath]);
  t.teardown(() => watch.stop("SIGKILL"));
  // "watching ..." on stderr: the stream is open.
  for (const deadline = Date.now() + 20_000; watch.output.stderr.length === 0 && Date.now() < deadline; ) await delay(50);
  t.deepEqual(watch.output.stderr, [`watching unix:${service.socketPath}; Ctrl-C to stop`]);
  await service.stop();
  await watch.output.closed;
  t.is(watch.subprocess.exitCode, 1);
  t.regex(watch.output.stderr.join("\n"), /rik-network: UNAVAILABLE: rik-network is shutting down/);
});
