import test from "ava";
import winston from "winston";
import { createMetrics } from "./create-metrics.js";
import { startMetricsServer } from "./start-metrics-server.js";

const logger = winston.createLogger({ silent: true });

test("serves the registry at /metrics in the Prometheus text format, 404 elsewhere", async (t) => {
  const metrics = createMetrics();
  metrics.rpcFinished("List", "OK", 0.001);
  const server = await startMetricsServer({ host: "127.0.0.1", port: 0, registry: metrics.registry, logger });
  t.teardown(() => server.close());
  t.is(server.url, `http://127.0.0.1:${server.port}/metrics`);

  const response = await fetch(server.url);
  t.is(response.status, 200);
  t.regex(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  t.regex(await response.text(), /^rik_network_rpc_calls_total\{method="List",code="OK"\} 1$/m);

  t.is((await fetch(`http://127.0.0.1:${server.port}/`)).status, 404);
  t.is((await fetch(server.url, { method: "POST" })).status, 405);
});

test("an address in use is refused with a message naming it and the flag", async (t) => {
  const registry = createMetrics().registry;
  const first = await startMetricsServer({ host: "127.0.0.1", port: 0, registry, logger });
  t.teardown(() => first.close());
  await t.throwsAsync(startMetricsServer({ host: "127.0.0.1", port: first.port, registry, logger }), {
    message: new RegExp(`^cannot serve metrics on 127\\.0\\.0\\.1:${first.port}: .*EADDRINUSE.*; pass another --metrics-listen, or off$`),
  });
});

test("close ends kept-alive connections instead of waiting for them", async (t) => {
  const server = await startMetricsServer({ host: "127.0.0.1", port: 0, registry: createMetrics().registry, logger });
  await (await fetch(server.url, { keepalive: true })).text();
  const started = Date.now();
  await server.close();
  t.true(Date.now() - started < 1000);
});
