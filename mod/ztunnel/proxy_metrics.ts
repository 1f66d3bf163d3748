/**
 * Metric families of the ztunnel's host listeners: DNS queries by transport
 * and outcome, and the explicit proxies' connections and refusals.
 *
 * @module
 */
import type { DnsStats } from "../dns/server.ts";
import type { Family, Sample } from "../telemetry/prometheus.ts";
import type { ProxyServerStats } from "./socks5.ts";

/** Where the stats are read at scrape time (undefined: that listener is off). */
export interface HostListenerStats {
  dns(): DnsStats | undefined;
  socks5(): Readonly<ProxyServerStats<string>> | undefined;
  http(): Readonly<ProxyServerStats<string>> | undefined;
}

/** The families; a listener that is off contributes no samples. */
export function proxyFamilies(s: HostListenerStats): Family[] {
  const proxies = () =>
    [["socks5", s.socks5()], ["http", s.http()]].filter((p): p is [
      string,
      Readonly<ProxyServerStats<string>>,
    ] => p[1] !== undefined);
  return [
    {
      name: "ambit_dns_queries_total",
      help: "DNS queries answered by the DNS proxy, by transport and outcome.",
      type: "counter",
      samples: () => {
        const d = s.dns();
        if (!d) return [];
        const out: Sample[] = [];
        for (const [transport, byOutcome] of Object.entries(d.queries)) {
          for (const [outcome, value] of Object.entries(byOutcome)) {
            out.push({ labels: { transport, outcome }, value });
          }
        }
        return out;
      },
    },
    {
      name: "ambit_dns_truncated_total",
      help: "UDP DNS answers sent truncated (the client retries over TCP).",
      type: "counter",
      samples: () => {
        const d = s.dns();
        return d ? [{ value: d.truncated }] : [];
      },
    },
    {
      name: "ambit_proxy_connections_total",
      help: "Client connections accepted by the SOCKS5 and HTTP proxies.",
      type: "counter",
      samples: () => proxies().map(([proxy, st]) => ({ labels: { proxy }, value: st.connections })),
    },
    {
      name: "ambit_proxy_connects_total",
      help: "Proxy requests handed to the mesh, by outcome (ok or the failure).",
      type: "counter",
      samples: () =>
        proxies().flatMap(([proxy, st]) =>
          Object.entries(st.connects).map(([outcome, value]) => ({
            labels: { proxy, outcome },
            value,
          }))
        ),
    },
    {
      name: "ambit_proxy_refused_total",
      help: "Proxy handshakes refused, by reason (bad version, method, command, garbage, ...).",
      type: "counter",
      samples: () =>
        proxies().flatMap(([proxy, st]) =>
          Object.entries(st.refused).map(([reason, value]) => ({
            labels: { proxy, reason },
            value,
          }))
        ),
    },
  ];
}
