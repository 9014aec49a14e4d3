/**
 * A winston logger for unit tests whose lines the test reads: every level, as the JSON
 * objects the service's logger would print.
 */
import { Writable } from "node:stream";
import winston from "winston";
import type { Logger } from "../../src/logger.js";

export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const logger = winston.createLogger({ level: "debug", format: winston.format.json(), transports: [new winston.transports.Stream({ stream })] });
  return { logger, lines };
}
