import type { Config } from "../config/index.js";
import type { Logger } from "../logger.js";
import { createMetrics, startMetricsServer, type MetricsServer } from "../metrics/index.js";
import { createNetworkPlane } from "../network/index.js";
import {
  claimSocketPath,
  createServer,
  loadServerTls,
  resolveGroupId,
  type ServerTls,
  type SocketGroup,
} from "../server/index.js";
import { sdNotify } from "../systemd/index.js";

function errorFields(error: unknown): { error: string; stack?: string } {
  return error instanceof Error ? { error: error.message, stack: error.stack } : { error: String(error) };
}

/** Logs why the daemon cannot go on, and yields its exit code. */
function fatal(logger: Logger, message: string, error: unknown): number {
  logger.error(message, errorFields(error));
  return 1;
}

/**
 * The daemon: checks everything that can be checked before the kernel is touched
 * (socket, socket group, TLS files, metrics address), sets the node up, serves until
 * `stop` is aborted, then shuts down gracefully. Resolves with the exit code. Instance
 * networks stay in the kernel when it stops.
 */
export async function runDaemon(config: Config, logger: Logger, stop: AbortSignal): Promise<number> {
  const crash = (what: string) => (error: unknown) => {
    logger.error(what, errorFields(error));
    process.exit(1);
  };
  process.on("uncaughtException", crash("uncaught exception"));
  process.on("unhandledRejection", crash("unhandled rejection"));

  // Before the kernel is touched: a second daemon on the same socket, or a bad flag, changes nothing.
  let socketGroup: SocketGroup | undefined;
  let tls: ServerTls | "insecure" | undefined;
  try {
    await claimSocketPath(config.socketPath);
    if (config.socketGroup !== undefined) {
      socketGroup = { name: config.socketGroup, gid: await resolveGroupId(config.socketGroup) };
    }
    if (config.listen !== undefined) {
      tls = config.listen.tls === "insecure" ? "insecure" : await loadServerTls(config.listen.tls);
    }
  } catch (error) {
    return fatal(logger, "cannot serve with this configuration", error);
  }

  const metrics = createMetrics();
  let metricsServer: MetricsServer | undefined;
  if (config.metricsListen !== undefined) {
    try {
      metricsServer = await startMetricsServer({ ...config.metricsListen, registry: metrics.registry, logger });
    } catch (error) {
      return fatal(logger, "cannot serve the metrics", error);
    }
  }
  const closeMetrics = async (): Promise<void> => metricsServer?.close();

  if (config.egressDeny.length === 0) {
    logger.warn("no egress deny (--egress-deny none): guests reach link-local addresses through the node, the cloud metadata service (169.254.169.254) and the node's credentials behind it included");
  }
  let plane: Awaited<ReturnType<typeof createNetworkPlane>>;
  try {
    // The service's own TCP ports can never be exposed; a listener on port 0 gets its port later, from the ephemeral range.
    const ownPorts = [config.listen?.port ?? 0, metricsServer?.port ?? 0].filter((port) => port > 0);
    plane = await createNetworkPlane({
      pool: config.pool,
      mtu: config.mtu,
      localhost: config.localhost,
      portPolicy: { ...config.hostPorts, reserved: [...config.reservedPorts, ...ownPorts] },
      logger,
      observer: metrics,
      stateDir: config.stateDir,
      resyncIntervalMs: config.resyncIntervalMs,
      spareTaps: config.spareTaps,
      ...(config.tapOwner === undefined ? {} : { tapOwner: config.tapOwner }),
      ...(config.tapGroup === undefined ? {} : { tapGroup: config.tapGroup }),
      maxPortsPerInstance: config.maxPortsPerInstance,
      firewallBackend: config.firewallBackend,
      iptables: config.iptables,
      ip6tables: { restoreCommand: config.iptables.restore6Command, saveCommand: config.iptables.save6Command },
      egressDeny: config.egressDeny,
    });
  } catch (error) {
    await closeMetrics();
    return fatal(logger, "cannot set up the network plane", error);
  }
  metrics.observePlane(plane);

  const server = createServer({
    plane,
    nodeName: config.nodeName,
    logger,
    socketPath: config.socketPath,
    ...(socketGroup === undefined ? {} : { socketGroup }),
    ...(config.listen === undefined || tls === undefined ? {} : { listen: { ...config.listen, tls } }),
    rpcObserver: metrics,
  });
  let addresses: Awaited<ReturnType<typeof server.start>>;
  try {
    addresses = await server.start();
  } catch (error) {
    await plane.close();
    await closeMetrics();
    return fatal(logger, "cannot start the gRPC server", error);
  }
  logger.info("ready", {
    socket_path: addresses.socketPath,
    socket_group: socketGroup?.name,
    tcp_port: addresses.tcpPort,
    tcp_tls: tls === undefined ? undefined : tls === "insecure" ? "none" : "mtls",
    metrics_url: metricsServer?.url,
    node_name: config.nodeName,
    pool: config.pool,
    mtu: config.mtu,
    localhost: config.localhost,
    host_ports: `${config.hostPorts.min}-${config.hostPorts.max}`,
    reserved_ports: config.reservedPorts,
    state_dir: config.stateDir,
    resync_interval_ms: config.resyncIntervalMs,
    spare_taps: config.spareTaps,
    tap_owner: config.tapOwner,
    tap_group: config.tapGroup,
    max_ports_per_instance: config.maxPortsPerInstance,
    firewall_backend: plane.firewallBackend,
    iptables_backend: plane.firewallBackend === "iptables" ? config.iptablesBackend : undefined,
    egress_deny: config.egressDeny,
    pid: process.pid,
  });
  await sdNotify({ READY: "1", STATUS: `serving on ${addresses.socketPath}` }).catch((error: unknown) =>
    logger.warn("cannot tell systemd that the service is ready", errorFields(error)),
  );

  const signal = await new Promise<string>((resolve) => {
    if (stop.aborted) resolve(String(stop.reason));
    else stop.addEventListener("abort", () => resolve(String(stop.reason)), { once: true });
  });
  logger.info("stopping", { signal });
  await sdNotify({ STOPPING: "1" }).catch(() => undefined);
  await server.shutdown();
  await plane.close();
  await closeMetrics();
  // Guests keep their connectivity while the service is down; a restart picks the state up again.
  logger.info("stopped; instance networks are left in the kernel");
  return 0;
}
