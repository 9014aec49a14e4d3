export { ConfigError, loadConfig, usage, type Config } from "./load-config.js";
