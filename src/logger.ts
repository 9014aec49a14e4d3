import winston from "winston";

export type Logger = winston.Logger;

export type LogLevel = "error" | "warn" | "info" | "debug";

export const logLevels: readonly LogLevel[] = ["error", "warn", "info", "debug"];

/** Structured JSON lines on stdout, one object per event, with an ISO timestamp. */
export function createLogger(level: LogLevel = "info"): Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console()],
  });
}
