/**
 * A stand-in for the netlink package's rtnetlink socket, for unit tests of Rtnetlink
 * (`Rtnetlink.open(() => scriptedNetlink(...))`): each request is answered by `answer`, from
 * its message type (and, for tests of what is sent, its flags and payload), with messages or
 * an error as the package reports them ("Request rejected: ENODEV"). Integration tests use
 * the kernel.
 */
import type { RtNetlinkSocket } from "netlink";

export interface ScriptedMessage {
  readonly type: number;
  readonly data: Buffer;
}

/** A request as Rtnetlink hands it to the socket: the flags it adds to NLM_F_REQUEST | NLM_F_ACK, and the payload. */
export interface ScriptedRequest {
  readonly flags: number;
  readonly payload: Buffer;
}

/** `answer` returns the reply's messages, or throws what the package would. */
export function scriptedNetlink(answer: (type: number, request: ScriptedRequest) => readonly ScriptedMessage[]): RtNetlinkSocket {
  const socket = {
    address: () => ({ port: 1 }),
    on: () => socket,
    setRecvBufferSize: () => undefined,
    request: async (type: number, data: Uint8Array | readonly Uint8Array[], options?: { flags?: number }) => {
      const payload = Buffer.concat(Array.isArray(data) ? data : [data as Uint8Array]);
      return [answer(type, { flags: options?.flags ?? 0, payload }), {}];
    },
    socket: { close: () => undefined },
  };
  return { socket } as unknown as RtNetlinkSocket;
}

/** What the package throws for a request the kernel refused with `errno`. */
export function rejected(errno: string): Error {
  return new Error(`Request rejected: ${errno}`);
}
