/**
 * A stand-in for the netlink package's rtnetlink socket, for unit tests of the messages
 * Rtnetlink builds from the kernel's answers (`Rtnetlink.open(() => scriptedNetlink(...))`):
 * each request is answered by `answer`, from its message type, with messages or an error as
 * the package reports them ("Request rejected: ENODEV"). Integration tests use the kernel.
 */
import type { RtNetlinkSocket } from "netlink";

const RTM_DELLINK = 17;
const RTM_SETLINK = 19;
const RTM_DELADDR = 21;

export interface ScriptedMessage {
  readonly type: number;
  readonly data: Buffer;
}

/** `answer` returns the reply's messages, or throws what the package would. */
export function scriptedNetlink(answer: (type: number) => readonly ScriptedMessage[]): RtNetlinkSocket {
  const socket = {
    address: () => ({ port: 1 }),
    on: () => socket,
    setRecvBufferSize: () => undefined,
    request: async (type: number) => [answer(type), {}],
    socket: { close: () => undefined },
  };
  // The package's own encoders that Rtnetlink uses, by the message type they send.
  const encoded = (type: number) => async () => answer(type);
  return { socket, setLink: encoded(RTM_SETLINK), delLink: encoded(RTM_DELLINK), delAddress: encoded(RTM_DELADDR) } as unknown as RtNetlinkSocket;
}

/** What the package throws for a request the kernel refused with `errno`. */
export function rejected(errno: string): Error {
  return new Error(`Request rejected: ${errno}`);
}
