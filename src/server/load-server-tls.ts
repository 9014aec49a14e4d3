import { readFile } from "node:fs/promises";
import { createSecureContext } from "node:tls";

/** PEM contents of the TCP listener's mTLS material. */
export interface ServerTls {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** CA(s) a client certificate must chain to. */
  readonly clientCa: Buffer;
}

export interface ServerTlsFiles {
  readonly certPath: string;
  readonly keyPath: string;
  readonly clientCaPath: string;
}

async function readPem(what: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new Error(`cannot read the ${what} ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Reads the listener's certificate, key and client CA, and checks that they make a TLS
 * context (PEM that parses, a key that matches the certificate), so that a mistake stops
 * the service at start with a message naming the file, not at the first client.
 */
export async function loadServerTls(files: ServerTlsFiles): Promise<ServerTls> {
  const [cert, key, clientCa] = await Promise.all([
    readPem("TLS certificate", files.certPath),
    readPem("TLS key", files.keyPath),
    readPem("client CA", files.clientCaPath),
  ]);
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new Error(
      `the TLS certificate ${files.certPath} and key ${files.keyPath} are unusable together: ${(error as Error).message}`,
      { cause: error },
    );
  }
  try {
    createSecureContext({ ca: clientCa });
  } catch (error) {
    throw new Error(`the client CA ${files.clientCaPath} is not PEM certificates: ${(error as Error).message}`, { cause: error });
  }
  if (!clientCa.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error(`the client CA ${files.clientCaPath} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return { cert, key, clientCa };
}
