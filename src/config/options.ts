import { ALWAYS_RESERVED_PORTS, DEFAULT_HOST_PORTS } from "../network/model/port-policy.js";
import { DEFAULT_SPARE_TAPS, MAX_SPARE_TAPS } from "../network/model/spare-count.js";
import { DEFAULT_EGRESS_DENY } from "../network/firewall/firewall.js";
import { DEFAULT_MAX_PORTS_PER_INSTANCE, MAX_PORTS_PER_INSTANCE_LIMIT } from "../network/model/exposure-limit.js";

export interface Option {
  readonly flag: string;
  readonly env: string;
  /** Placeholder of the value in the help; absent for a boolean flag. */
  readonly value?: string;
  /** One line of help, ending with the default. */
  readonly help: string;
}

/**
 * Every flag of `serve`. The flag parser, the help and the checks against the README are all made
 * from this table, so a new setting is one entry here plus its validator in validators.ts.
 */
export const options = {
  socket: {
    flag: "socket",
    env: "RIK_NETWORK_SOCKET",
    value: "PATH",
    help: "unix socket to serve on, mode 0600 (default /run/rik-network/rik-network.sock)",
  },
  socketGroup: {
    flag: "socket-group",
    env: "RIK_NETWORK_SOCKET_GROUP",
    value: "NAME",
    help: "also let this group use the socket (chgrp, mode 0660) (default: root only)",
  },
  listen: {
    flag: "listen",
    env: "RIK_NETWORK_LISTEN",
    value: "HOST:PORT",
    help: "also serve on TCP, with mTLS (--tls-*) or --insecure-tcp (default: the unix socket only)",
  },
  tlsCert: {
    flag: "tls-cert",
    env: "RIK_NETWORK_TLS_CERT",
    value: "FILE",
    help: "PEM certificate (chain) of the TCP listener (required with --listen)",
  },
  tlsKey: {
    flag: "tls-key",
    env: "RIK_NETWORK_TLS_KEY",
    value: "FILE",
    help: "PEM private key of --tls-cert (required with --listen)",
  },
  tlsClientCa: {
    flag: "tls-client-ca",
    env: "RIK_NETWORK_TLS_CLIENT_CA",
    value: "FILE",
    help: "PEM CA(s) that client certificates must chain to (required with --listen)",
  },
  insecureTcp: {
    flag: "insecure-tcp",
    env: "RIK_NETWORK_INSECURE_TCP",
    help: "serve --listen without TLS; anyone who reaches it can rewire the node (default false)",
  },
  metricsListen: {
    flag: "metrics-listen",
    env: "RIK_NETWORK_METRICS_LISTEN",
    value: "HOST:PORT",
    help: "Prometheus endpoint (/metrics), or off (default 127.0.0.1:9464)",
  },
  nodeName: {
    flag: "node-name",
    env: "RIK_NETWORK_NODE_NAME",
    value: "NAME",
    help: "identifier of the node in Watch messages (default: the hostname)",
  },
  pool: {
    flag: "pool",
    env: "RIK_NETWORK_POOL",
    value: "CIDR",
    help: "IPv4 pool the instances' /30s come from, /8 to /30 (default 10.220.0.0/16)",
  },
  mtu: {
    flag: "mtu",
    env: "RIK_NETWORK_MTU",
    value: "N",
    help: "MTU of every TAP, 68 to 65535, or auto: the MTU of the default route's interface (default auto)",
  },
  hostPorts: {
    flag: "host-ports",
    env: "RIK_NETWORK_HOST_PORTS",
    value: "MIN-MAX",
    help: `host ports Functions may expose (default ${DEFAULT_HOST_PORTS.min}-${DEFAULT_HOST_PORTS.max}: below the ephemeral range)`,
  },
  reservedPorts: {
    flag: "reserved-ports",
    env: "RIK_NETWORK_RESERVED_PORTS",
    value: "LIST",
    help: `comma-separated host ports never exposed; ${ALWAYS_RESERVED_PORTS.join(", ")} and the service's own TCP ports always are (default none more)`,
  },
  localhost: {
    flag: "localhost",
    env: "RIK_NETWORK_LOCALHOST",
    value: "BOOL",
    help: "let processes on the node reach exposed ports on 127.0.0.1 (route_localnet on each TAP) (default true)",
  },
  stateDir: {
    flag: "state-dir",
    env: "RIK_NETWORK_STATE_DIR",
    value: "DIR",
    help: "directory of the durable instance state (default /var/lib/rik-network)",
  },
  resyncInterval: {
    flag: "resync-interval",
    env: "RIK_NETWORK_RESYNC_INTERVAL",
    value: "SECONDS",
    help: "period of the drift-repairing resync, 0 = off (default 30)",
  },
  spareTaps: {
    flag: "spare-taps",
    env: "RIK_NETWORK_SPARE_TAPS",
    value: "N",
    help: `TAPs kept made ahead of time, so that a CREATE renames one instead of making its own; 0 to ${MAX_SPARE_TAPS} (default ${DEFAULT_SPARE_TAPS})`,
  },
  tapOwner: {
    flag: "tap-owner",
    env: "RIK_NETWORK_TAP_OWNER",
    value: "UID",
    help: "numeric user id that may attach to every TAP without CAP_NET_ADMIN, e.g. the Firecracker jailer's --uid (default: root only)",
  },
  tapGroup: {
    flag: "tap-group",
    env: "RIK_NETWORK_TAP_GROUP",
    value: "GID",
    help: "numeric group id whose members may attach to every TAP without CAP_NET_ADMIN; with --tap-owner, a VMM must be both (default: root only)",
  },
  maxPortsPerInstance: {
    flag: "max-ports-per-instance",
    env: "RIK_NETWORK_MAX_PORTS_PER_INSTANCE",
    value: "N",
    help: `exposure entries one instance may have, 0 to ${MAX_PORTS_PER_INSTANCE_LIMIT} (default ${DEFAULT_MAX_PORTS_PER_INSTANCE})`,
  },
  firewallBackend: {
    flag: "firewall-backend",
    env: "RIK_NETWORK_FIREWALL_BACKEND",
    value: "NAME",
    help: "auto, nft or iptables: the native nftables table inet rik-network, or iptables chains; auto takes nft when nft 1.0 or later works (default auto)",
  },
  iptablesBackend: {
    flag: "iptables-backend",
    env: "RIK_NETWORK_IPTABLES_BACKEND",
    value: "NAME",
    help: "with --firewall-backend iptables: auto, nft or legacy runs iptables-[nft-|legacy-]restore and -save (default auto)",
  },
  egressDeny: {
    flag: "egress-deny",
    env: "RIK_NETWORK_EGRESS_DENY",
    value: "LIST",
    help: `comma-separated IPv4 CIDRs guests never reach, forwarded or on the node, or none (default ${DEFAULT_EGRESS_DENY.join(",")}: link-local and cloud metadata)`,
  },
  logLevel: {
    flag: "log-level",
    env: "RIK_NETWORK_LOG_LEVEL",
    value: "LEVEL",
    help: "error, warn, info or debug (default info)",
  },
} as const satisfies Record<string, Option>;

/** Every flag with its environment variable, for the checks that the help and the README list them all. */
export const flagTable: readonly { readonly flag: string; readonly env: string }[] = Object.values(options);

function usageLines(): string[] {
  return (Object.values(options) as Option[]).flatMap((option) => [
    `  --${option.flag}${option.value === undefined ? "" : ` ${option.value}`}  [${option.env}]`,
    `      ${option.help}`,
  ]);
}

/** The help of `rik-network serve`, generated from the option table so that it lists every flag. */
export const usage = `Usage: rik-network serve [options]

Serves the network plane of a RIK worker node (TAPs, /30s, iptables) over gRPC.
"serve" is the default command: "rik-network [options]" serves too.

Options, each also read from the environment variable in brackets (the flag wins):
${usageLines().join("\n")}
  --help, -h
      print this help and exit
`;
