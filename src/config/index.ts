export {
  ConfigError,
  loadConfig,
  usage,
  type Config,
  type HostPort,
  type IptablesBackend,
  type ServerTlsFiles,
  type TcpListenConfig,
} from "./validators.js";
