import { assertEquals } from "../../tests/_util/asserts.ts";
import { meshSnapshot } from "../../tests/dns/_mesh.ts";
import { yaml } from "../config/_testing.ts";
import { MeshNames, meshNamesFor, type NameLookup } from "./names.ts";

const names = MeshNames.fromSnapshot(meshSnapshot());

const answer = (host: string, source: string, ...addresses: string[]): NameLookup => ({
  kind: "answer",
  addresses,
  host,
  source,
});
const REVIEWS_SHOP = ["reviews.shop.svc.cluster.local", "Service/shop/reviews"] as const;
const REVIEWS_PAY = ["reviews.payments.svc.cluster.local", "Service/payments/reviews"] as const;
const API = ["api.example.com", "ServiceEntry/shop/api"] as const;
const WILD = ["*.wild.example.com", "ServiceEntry/shop/wild"] as const;
const FORWARD: NameLookup = { kind: "forward" };
const NXDOMAIN: NameLookup = { kind: "nxdomain" };

const cases: { name: string; q: string; type?: string; ns?: string[]; want: NameLookup }[] = [
  // Full names.
  {
    name: "FQDN → VIP",
    q: "reviews.shop.svc.cluster.local",
    want: answer(...REVIEWS_SHOP, "10.96.0.10"),
  },
  {
    name: "trailing dot",
    q: "reviews.shop.svc.cluster.local.",
    want: answer(...REVIEWS_SHOP, "10.96.0.10"),
  },
  {
    name: "case-insensitive",
    q: "Reviews.SHOP.svc.Cluster.Local",
    want: answer(...REVIEWS_SHOP, "10.96.0.10"),
  },
  {
    name: "other namespace's FQDN",
    q: "reviews.payments.svc.cluster.local",
    ns: ["shop"],
    want: answer(...REVIEWS_PAY, "10.96.0.20"),
  },
  {
    name: "AAAA on an IPv4 VIP: no data",
    q: "reviews.shop.svc.cluster.local",
    type: "AAAA",
    want: { kind: "nodata", host: REVIEWS_SHOP[0], inZone: true },
  },
  {
    name: "AAAA on an IPv6 VIP",
    q: "web6.shop.svc.cluster.local",
    type: "AAAA",
    want: answer("web6.shop.svc.cluster.local", "Service/shop/web6", "fd00::10"),
  },
  {
    name: "A on an IPv6 VIP: no data",
    q: "web6.shop.svc.cluster.local",
    type: "A",
    want: { kind: "nodata", host: "web6.shop.svc.cluster.local", inZone: true },
  },
  {
    name: "TXT on a mesh name: no data",
    q: "reviews.shop.svc.cluster.local",
    type: "TXT",
    want: { kind: "nodata", host: REVIEWS_SHOP[0], inZone: true },
  },
  {
    name: "ANY: every address",
    q: "api.example.com",
    type: "ANY",
    want: answer(...API, "192.0.2.10", "2001:db8::10"),
  },
  // The mesh zone.
  {
    name: "unknown service in the zone: NXDOMAIN",
    q: "x.default.svc.cluster.local",
    want: NXDOMAIN,
  },
  {
    name: "unknown name in a known namespace: NXDOMAIN",
    q: "nope.shop.svc.cluster.local",
    want: NXDOMAIN,
  },
  { name: "deeper unknown name: NXDOMAIN", q: "a.reviews.shop.svc.cluster.local", want: NXDOMAIN },
  {
    name: "a namespace (has names below): no data",
    q: "shop.svc.cluster.local",
    want: { kind: "nodata", host: "shop.svc.cluster.local", inZone: true },
  },
  {
    name: "the zone apex: no data",
    q: "svc.cluster.local",
    want: { kind: "nodata", host: "svc.cluster.local", inZone: true },
  },
  { name: "above the zone: forwarded", q: "cluster.local", want: FORWARD },
  { name: "pod names are not the mesh zone", q: "10-1-0-1.shop.pod.cluster.local", want: FORWARD },
  // Short names.
  {
    name: "bare name, one client namespace has it",
    q: "reviews",
    ns: ["shop"],
    want: answer(...REVIEWS_SHOP, "10.96.0.10"),
  },
  {
    name: "bare name, the other namespace",
    q: "reviews",
    ns: ["payments"],
    want: answer(...REVIEWS_PAY, "10.96.0.20"),
  },
  {
    name: "bare name, ambiguous across client namespaces: forwarded",
    q: "reviews",
    ns: ["shop", "payments"],
    want: FORWARD,
  },
  {
    name: "bare name, duplicate namespaces are one",
    q: "reviews",
    ns: ["shop", "shop"],
    want: answer(...REVIEWS_SHOP, "10.96.0.10"),
  },
  {
    name: "bare name, unique among several namespaces",
    q: "ratings",
    ns: ["payments", "shop"],
    want: answer("ratings.shop.svc.cluster.local", "Service/shop/ratings", "10.96.0.11"),
  },
  {
    name: "bare name, no client namespace has it: forwarded",
    q: "ratings",
    ns: ["payments"],
    want: FORWARD,
  },
  { name: "bare name, unknown client: forwarded", q: "reviews", ns: [], want: FORWARD },
  { name: "bare unknown name: forwarded", q: "printer", ns: ["shop"], want: FORWARD },
  {
    name: "service.namespace, any client",
    q: "reviews.payments",
    ns: [],
    want: answer(...REVIEWS_PAY, "10.96.0.20"),
  },
  {
    name: "service.namespace.svc",
    q: "Reviews.Shop.Svc.",
    ns: [],
    want: answer(...REVIEWS_SHOP, "10.96.0.10"),
  },
  {
    name: "service.namespace AAAA on IPv4: no data (outside zone)",
    q: "reviews.shop",
    type: "AAAA",
    want: { kind: "nodata", host: REVIEWS_SHOP[0], inZone: false },
  },
  { name: "two labels that are no service: forwarded", q: "example.com", want: FORWARD },
  {
    name: "service.namespace with unknown namespace: forwarded",
    q: "reviews.default",
    want: FORWARD,
  },
  { name: "name.ns.svc unknown: forwarded", q: "x.shop.svc", want: FORWARD },
  // ServiceEntries.
  {
    name: "ServiceEntry host with addresses (CIDR /32)",
    q: "api.example.com",
    want: answer(...API, "192.0.2.10"),
  },
  {
    name: "ServiceEntry IPv6 address",
    q: "API.example.com.",
    type: "AAAA",
    want: answer(...API, "2001:db8::10"),
  },
  {
    name: "ServiceEntry exact host next to its wildcard",
    q: "exact.wild.example.com",
    want: answer("exact.wild.example.com", "ServiceEntry/shop/wild", "192.0.2.20"),
  },
  {
    name: "wildcard host, one label",
    q: "a.wild.example.com",
    want: answer(...WILD, "192.0.2.20"),
  },
  {
    name: "wildcard host, several labels",
    q: "a.b.wild.example.com",
    want: answer(...WILD, "192.0.2.20"),
  },
  { name: "wildcard does not match its own domain", q: "wild.example.com", want: FORWARD },
  {
    name: "wildcard AAAA without IPv6 addresses: no data",
    q: "a.wild.example.com",
    type: "AAAA",
    want: { kind: "nodata", host: "*.wild.example.com", inZone: false },
  },
  { name: "ServiceEntry without addresses: forwarded", q: "ext.example.org", want: FORWARD },
  {
    name: "ServiceEntry without addresses inside the zone: forwarded, not NXDOMAIN",
    q: "unvip.shop.svc.cluster.local",
    want: FORWARD,
  },
  { name: "ServiceEntry with only a range: forwarded", q: "range.example.net", want: FORWARD },
  // Everything else.
  { name: "external name: forwarded", q: "www.example.org", want: FORWARD },
  { name: "root: forwarded", q: ".", want: FORWARD },
  { name: "empty: forwarded", q: "", want: FORWARD },
];

for (const c of cases) {
  Deno.test(`MeshNames.lookup(): ${c.name}`, () => {
    assertEquals(names.lookup(c.q, c.type ?? "A", { namespaces: c.ns ?? ["shop"] }), c.want);
  });
}

Deno.test("MeshNames.resolve() gives both families, or undefined when the mesh does not answer", () => {
  assertEquals(names.resolve("api.example.com", []), ["192.0.2.10", "2001:db8::10"]);
  assertEquals(names.resolve("reviews", ["payments"]), ["10.96.0.20"]);
  assertEquals(names.resolve("reviews", ["shop", "payments"]), undefined);
  assertEquals(names.resolve("x.default.svc.cluster.local", []), undefined);
  assertEquals(names.resolve("www.example.org", []), undefined);
});

Deno.test("MeshNames follows Mesh spec.dnsSuffix", () => {
  const n = MeshNames.fromSnapshot(meshSnapshot(yaml`
    apiVersion: ambit.io/v1alpha1
    kind: Mesh
    metadata: {name: mesh}
    spec: {dnsSuffix: corp.internal}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: default}
    spec:
      clusterIP: 10.96.1.1
      ports: [{port: 80}]
  `));
  assertEquals(n.zone, "svc.corp.internal");
  assertEquals(n.resolve("web.default.svc.corp.internal", []), ["10.96.1.1"]);
  assertEquals(n.lookup("web.default.svc.cluster.local", "A", { namespaces: [] }), FORWARD);
  assertEquals(n.lookup("nope.default.svc.corp.internal", "A", { namespaces: [] }), NXDOMAIN);
});

Deno.test("MeshNames: a Service wins over a ServiceEntry host of the same name", () => {
  const n = MeshNames.fromSnapshot(meshSnapshot(yaml`
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: default}
    spec:
      clusterIP: 10.96.1.1
      ports: [{port: 80}]
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: shadow, namespace: default}
    spec:
      hosts: [web.default.svc.cluster.local]
      addresses: [192.0.2.99]
      ports: [{number: 80, name: http}]
  `));
  assertEquals(n.resolve("web.default.svc.cluster.local", []), ["10.96.1.1"]);
  assertEquals(n.size, 1);
});

Deno.test("meshNamesFor() builds once per snapshot", () => {
  const s = meshSnapshot();
  const a = meshNamesFor(s);
  assertEquals(meshNamesFor(s) === a, true);
  assertEquals(meshNamesFor(meshSnapshot()) === a, false);
});
