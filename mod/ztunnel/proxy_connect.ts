/**
 * The contract between the explicit-proxy front ends (SOCKS5, HTTP CONNECT)
 * and the ztunnel's outbound path: a front end parses what the app asked
 * for, puts back on the socket any bytes the client sent beyond its request
 * (`unshift`, before calling the connector: Deno cannot unshift after the
 * socket saw its end), asks the connector to open the target, answers the
 * app with the outcome, and only then lets the connector relay bytes. The
 * connector never reads the client socket before `pipe()`.
 *
 * @module
 */
import type net from "node:net";

/** What an app asked a proxy to connect to. */
export interface ProxyTarget {
  /** An IPv4 or IPv6 literal (no brackets), or a domain name. */
  readonly host: string;
  readonly port: number;
  readonly kind: "ipv4" | "ipv6" | "domain";
}

/** Why a proxied connection could not be opened (mapped to SOCKS5 reply codes and HTTP statuses). */
export type ProxyFailure =
  /** Policy refused it, or the client could not be attributed (SOCKS 0x02, HTTP 403). */
  | "not_allowed"
  /** No such host: an unknown name, or no endpoint (SOCKS 0x04, HTTP 502). */
  | "host_unreachable"
  /** The destination refused the connection (SOCKS 0x05, HTTP 502). */
  | "connection_refused"
  /** The connect timed out (SOCKS 0x06, HTTP 504). */
  | "timed_out"
  /** Anything else (SOCKS 0x01, HTTP 502). */
  | "general";

/** The outcome of {@link ProxyConnector.connect}. */
export type ProxyOpen =
  | {
    readonly ok: true;
    /**
     * Relays between the client socket and the opened upstream until both
     * sides close; records telemetry. Call it after the success reply was
     * written; also when the client went away meanwhile (it then releases
     * the upstream).
     */
    pipe(): Promise<void>;
  }
  | { readonly ok: false; readonly failure: ProxyFailure; readonly message: string };

/** Opens the upstream for a proxied connection (implemented by the ztunnel's outbound path). */
export interface ProxyConnector {
  /**
   * Attributes `client` to a local workload, resolves `target` (mesh names
   * and VIPs first) and opens the upstream. Never throws; never writes to
   * or destroys `client` except through the returned `pipe()`.
   */
  connect(client: net.Socket, target: ProxyTarget, via: "socks5" | "http"): Promise<ProxyOpen>;
}
