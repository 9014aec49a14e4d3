import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Request } from "./wire.js";

/**
 * The worker thread, as CommonJS source (tsx does not reach worker threads, and the netlink
 * package is plain JavaScript). It opens an rtnetlink socket of its own and sends each request
 * it is given, one after the other, answering with nothing, or with the error's message.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { createRtNetlink } = require(workerData.netlink);
const socket = createRtNetlink().socket;
let socketError;
socket.on("error", (error) => (socketError = error));
const localPort = socket.address().port;
parentPort.on("message", ({ id, type, flags, payload, close }) => {
  if (close) {
    // Closed here, by this thread, so that the thread ends with no native handle open.
    socket.socket.close();
    parentPort.close();
    return;
  }
  socket.request(type, Buffer.from(payload), { timeout: workerData.timeoutMs, localPort, flags }).then(
    () => parentPort.postMessage({ id }),
    (error) => {
      const cause = socketError !== undefined && /Timeout/.test(String(error && error.message)) ? socketError : error;
      parentPort.postMessage({ id, message: cause instanceof Error ? cause.message : String(cause) });
    },
  );
});
`;

/** How long a worker may take to close its socket and end before it is terminated. */
const CLOSE_TIMEOUT_MS = 2000;

interface Pending {
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/**
 * An rtnetlink socket in a worker thread, for the requests the kernel answers only once an RCU
 * grace period is over: deleting a link waits for one inside sendmsg(2) itself, on the sending
 * thread, so that sent from the event loop it would stall every other call of the service
 * meanwhile. Requests are sent in the order given; answers carry no messages. Started at the
 * first request; idle, it does not keep the process alive.
 */
export class OffThreadSocket {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private sequence = 0;
  private closed = false;
  private readonly timeoutMs: number;

  constructor(timeoutMs: number) {
    this.timeoutMs = timeoutMs;
  }

  /** Resolves on the kernel's ACK; rejects with an Error whose message is netlink's (its errno name in it). */
  request(request: Request): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error("the rtnetlink socket is closed"));
        return;
      }
      const id = ++this.sequence;
      const worker = this.started();
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) worker.ref();
      worker.postMessage({ id, type: request.type, flags: request.flags, payload: request.payload });
    });
  }

  /**
   * Stops the worker thread once its socket is closed: the thread closes it and ends by
   * itself. Terminating it instead, with the socket open, can abort the whole process as it
   * exits (SIGABRT, seen after a SIGTERM under load). Requests under way fail.
   */
  close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      const stuck = setTimeout(() => void worker.terminate().then(() => resolve(), () => resolve()), CLOSE_TIMEOUT_MS);
      worker.once("exit", () => {
        clearTimeout(stuck);
        resolve();
      });
      worker.ref();
      worker.postMessage({ close: true });
    });
  }

  private started(): Worker {
    if (this.worker !== undefined) return this.worker;
    const workerData = { netlink: createRequire(import.meta.url).resolve("netlink"), timeoutMs: this.timeoutMs };
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
    worker.unref();
    worker.on("message", ({ id, message }: { id: number; message?: string }) => {
      const request = this.pending.get(id);
      if (request === undefined) return;
      this.pending.delete(id);
      if (this.pending.size === 0) worker.unref();
      if (message === undefined) request.resolve();
      else request.reject(new Error(message));
    });
    const failAll = (error: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const { reject } of this.pending.values()) reject(new Error(`the rtnetlink worker thread stopped: ${error.message}`));
      this.pending.clear();
    };
    worker.on("error", failAll);
    worker.on("exit", (code) => failAll(new Error(`exit code ${code}`)));
    this.worker = worker;
    return worker;
  }
}
