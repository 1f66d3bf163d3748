import { assertEquals } from "../../tests/_util/asserts.ts";
import type { Workload } from "../config/snapshot.ts";
import { labelSet, parseBaggage, TcpMetrics, unknownPeer, workloadLabels } from "./tcp_metrics.ts";
import { renderPrometheus } from "./prometheus.ts";

const w = (labels: Record<string, string>): Workload => ({
  key: "shop/web-1",
  name: "web-1",
  namespace: "shop",
  node: "n",
  address: "10.0.0.1",
  ports: {},
  labels,
  serviceAccount: "web",
  identity: "spiffe://td/ns/shop/sa/web",
  proxyProtocol: false,
  weight: 1,
  enrolled: true,
  services: [],
});

Deno.test("workloadLabels() falls back as Istio does for app, version and canonical names", () => {
  const table: [string, Record<string, string>, [string, string, string, string]][] = [
    ["no labels", {}, ["unknown", "unknown", "web-1", "latest"]],
    ["app and version", { app: "web", version: "v2" }, ["web", "v2", "web", "v2"]],
    [
      "kubernetes recommended labels",
      { "app.kubernetes.io/name": "web", "app.kubernetes.io/version": "1.2" },
      ["web", "1.2", "web", "1.2"],
    ],
    [
      "canonical labels win for canonical names",
      {
        app: "web",
        version: "v2",
        "service.istio.io/canonical-name": "storefront",
        "service.istio.io/canonical-revision": "r7",
      },
      ["web", "v2", "storefront", "r7"],
    ],
  ];
  for (const [name, labels, [app, version, cs, cr]] of table) {
    const l = workloadLabels(w(labels));
    assertEquals([l.app, l.version, l.canonicalService, l.canonicalRevision], [
      app,
      version,
      cs,
      cr,
    ], name);
    assertEquals([l.workload, l.namespace, l.principal], [
      "web-1",
      "shop",
      "spiffe://td/ns/shop/sa/web",
    ]);
  }
});

Deno.test("parseBaggage() reads W3C baggage, drops properties, and is bounded", () => {
  const table: [string, string | string[] | undefined, Record<string, string>][] = [
    ["absent", undefined, {}],
    ["two keys", "k8s.namespace.name=shop,service.name=web", {
      "k8s.namespace.name": "shop",
      "service.name": "web",
    }],
    ["properties and spaces", " a = 1;p=2 , b=x%20y", { a: "1", b: "x y" }],
    ["bad percent encoding kept as is", "a=%zz", { a: "%zz" }],
    ["several headers", ["a=1", "b=2"], { a: "1", b: "2" }],
    ["garbage", "=,,;;x", {}],
  ];
  for (const [name, h, want] of table) assertEquals(parseBaggage(h), want, name);
  assertEquals(Object.keys(parseBaggage("k=v,".repeat(10_000))).length, 1, "bounded input");
});

Deno.test("TcpMetrics keeps counters monotonic and labels in Istio's set", () => {
  const m = new TcpMetrics();
  const labels = {
    reporter: "source" as const,
    source: workloadLabels(w({ app: "web" })),
    destination: unknownPeer("spiffe://td/ns/db/sa/db"),
    responseFlags: "-",
    securityPolicy: "mutual_tls" as const,
  };
  const t = m.established(labels);
  t.counters.aToB += 10;
  t.counters.bToA += 20;
  m.failed({ ...labels, responseFlags: "UF" });
  const text = renderPrometheus(m.families());
  const keys = Object.keys(labelSet(labels));
  assertEquals(keys.length, 23);
  assertEquals(keys.includes("destination_service"), true);
  assertEquals(labelSet(labels).destination_service, "unknown");
  const line = (name: string, flag: string) =>
    text.split("\n").find((l) => l.startsWith(name + "{") && l.includes(`response_flags="${flag}"`))
      ?.split(" ").pop();
  assertEquals(line("istio_tcp_received_bytes_total", "-"), "10");
  assertEquals(line("istio_tcp_sent_bytes_total", "-"), "20");
  assertEquals(line("istio_tcp_connections_closed_total", "-"), "0");
  assertEquals(line("istio_tcp_connections_opened_total", "UF"), "1");
  t.close();
  t.close();
  const after = renderPrometheus(m.families());
  assertEquals(
    after.split("\n").filter((l) => l.startsWith("istio_tcp_connections_closed_total{"))
      .map((l) => l.split(" ").pop()),
    ["1", "1"],
  );
  assertEquals(after.includes('istio_tcp_received_bytes_total{reporter="source"'), true);
  m.enabled = false;
  m.established(labels).close();
  assertEquals(m.seriesCount, 2, "disabled metrics record nothing");
});
