export { createMetrics, type Metrics, type PlaneView } from "./create-metrics.js";
export { startMetricsServer, type MetricsServer, type MetricsServerOptions } from "./start-metrics-server.js";
