export { ConfigError } from "./config-error.js";
export {
  loadConfig,
  type Config,
  type HostPort,
  type IptablesBackend,
  type ServerTlsFiles,
  type TcpListenConfig,
} from "./load-config.js";
export { usage } from "./options.js";
