/**
 * L7 at the waypoint, end to end in process (client → ztunnel → waypoint →
 * ztunnel → apps): header and path routing, a 90/10 split, retries turning
 * an intermittent 503 into 200, a request timeout (504), outlier ejection
 * and recovery, JWT accepted / rejected / missing, an L7 deny (403), and
 * traceparent and request metrics, fault injection and a local rate limit.
 */
import http from "node:http";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { assertEquals, assertIncludes, assertOk } from "../_util/asserts.ts";
import { addressBlock, testMesh } from "../ztunnel/_mesh.ts";
import { meshHead } from "./_mesh_head.ts";

const ISSUER = "https://issuer.example";

function workload(name: string, node: string, address: string, labels: string): string {
  return `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ${name}, namespace: apps }
spec: { node: ${node}, address: ${address}, serviceAccount: ${name}, labels: { ${labels} }, ports: { http: 8080 } }
`;
}

function service(name: string, vip: string, selector: string): string {
  return `---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: apps, labels: { istio.io/use-waypoint: waypoint } }
spec:
  clusterIP: ${vip}
  selector: { ${selector} }
  ports: [{ name: http, port: 80, targetPort: http, appProtocol: http }]
`;
}

function config(a: (n: number, h: number) => string, jwks: string): string {
  return `
${meshHead(a)}${workload("reviews-v1", "node-b", a(2, 10), "app: reviews, version: v1")}
${workload("reviews-v2", "node-b", a(2, 11), "app: reviews, version: v2")}
${workload("ratings-good", "node-b", a(2, 12), "app: ratings")}
${workload("ratings-bad", "node-b", a(2, 13), "app: ratings")}
${workload("secure", "node-b", a(2, 14), "app: secure")}
${service("reviews", a(3, 1), "app: reviews")}
${service("reviews-v1", a(3, 2), "app: reviews, version: v1")}
${service("reviews-v2", a(3, 3), "app: reviews, version: v2")}
${service("ratings", a(3, 4), "app: ratings")}
${service("secure", a(3, 5), "app: secure")}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: apps }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, port: 80 }]
  rules:
    - matches: [{ headers: [{ name: end-user, value: jason }] }]
      backendRefs: [{ name: reviews-v2, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /v1only } }]
      backendRefs: [{ name: reviews-v1, port: 80 }]
      filters:
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [{ name: x-route, value: v1only }] }
    - matches: [{ path: { type: PathPrefix, value: /flaky } }]
      backendRefs: [{ name: reviews-v1, port: 80 }]
      retry: { attempts: 3, codes: [503], backoff: 10ms }
    - matches: [{ path: { type: PathPrefix, value: /slow } }]
      backendRefs: [{ name: reviews-v1, port: 80 }]
      timeouts: { request: 300ms }
    - matches: [{ path: { type: PathPrefix, value: /fault } }]
      backendRefs: [{ name: reviews-v1, port: 80 }]
      filters: [{ type: ExtensionRef, extensionRef: { group: ambit.io, kind: HTTPFault, name: teapot } }]
    - matches: [{ path: { type: PathPrefix, value: /delayed } }]
      backendRefs: [{ name: reviews-v1, port: 80 }]
      filters: [{ type: ExtensionRef, extensionRef: { group: ambit.io, kind: HTTPFault, name: slow } }]
    - matches: [{ path: { type: PathPrefix, value: /limited } }]
      backendRefs: [{ name: reviews-v1, port: 80 }]
      filters: [{ type: ExtensionRef, extensionRef: { group: ambit.io, kind: LocalRateLimit, name: three } }]
    - matches: [{ path: { type: PathPrefix, value: /old } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /new }, statusCode: 301 }
    - backendRefs:
        - { name: reviews-v1, port: 80, weight: 90 }
        - { name: reviews-v2, port: 80, weight: 10 }
---
apiVersion: ambit.io/v1alpha1
kind: HTTPFault
metadata: { name: teapot, namespace: apps }
spec: { abort: { httpStatus: 418, percentage: { value: 100 } } }
---
apiVersion: ambit.io/v1alpha1
kind: HTTPFault
metadata: { name: slow, namespace: apps }
spec: { delay: { fixedDelay: 200ms, percentage: { value: 100 } } }
---
apiVersion: ambit.io/v1alpha1
kind: LocalRateLimit
metadata: { name: three, namespace: apps }
spec: { tokenBucket: { maxTokens: 3, tokensPerFill: 3, fillInterval: 60s }, enableXRateLimitHeaders: DRAFT_VERSION_03 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ratings, namespace: apps }
spec:
  host: ratings.apps.svc.cluster.local
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
    outlierDetection: { consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 1s, maxEjectionPercent: 50 }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: reviews-no-admin, namespace: apps }
spec:
  targetRefs: [{ kind: Service, group: "", name: reviews }]
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: secure-jwt, namespace: apps }
spec:
  targetRefs: [{ kind: Service, group: "", name: secure }]
  jwtRules:
    - issuer: ${ISSUER}
      audiences: [secure-api]
      jwks: '${jwks}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: secure-needs-jwt, namespace: apps }
spec:
  targetRefs: [{ kind: Service, group: "", name: secure }]
  action: ALLOW
  rules: [{ from: [{ source: { requestPrincipals: ["${ISSUER}/*"] } }] }]
`;
}

interface App {
  readonly name: string;
  hits: number;
  close(): void;
  server?: http.Server;
}

/** An HTTP app: `/flaky` answers 503 every other time, `/slow` waits 2 s, ratings-bad always 503. */
async function app(name: string, ip: string): Promise<App> {
  const state: App = { name, hits: 0, close: () => srv.close() };
  let flaky = 0;
  const srv = http.createServer((req, res): void => {
    state.hits++;
    const path = req.url ?? "/";
    if (name === "ratings-bad") return void res.writeHead(503).end("bad");
    if (path.startsWith("/flaky") && flaky++ % 2 === 0) {
      return void res.writeHead(503).end("flaky");
    }
    if (path.startsWith("/slow")) {
      const t = setTimeout(() => res.end("slow"), 2000);
      res.on("close", () => clearTimeout(t));
      return;
    }
    res.setHeader("x-app", name);
    res.setHeader("x-saw-traceparent", String(req.headers.traceparent ?? ""));
    res.setHeader("x-saw-user", String(req.headers["x-jwt-sub"] ?? ""));
    res.end(`${name} ${req.method} ${path}`);
  });
  await new Promise<void>((r) => srv.listen(8080, ip, r));
  state.server = srv;
  return state;
}

/** A keep-alive client from the client workload's address through the VIP. */
function client(localAddress: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const get = (
    vip: string,
    path: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> =>
    new Promise((resolve, reject) => {
      const req = http.request(
        { host: vip, port: 80, path, headers, agent, localAddress },
        (res) => {
          let body = "";
          res.on("data", (c) => body += c);
          res.on("end", () => resolve({ status: res.statusCode!, body, headers: res.headers }));
        },
      );
      req.on("error", reject);
      req.end();
    });
  return { get, close: () => agent.destroy() };
}

Deno.test("waypoint L7: routing, split, retries, timeout, redirect, outlier ejection, JWT and L7 policy", async (t) => {
  const a = addressBlock();
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" };
  const other = await generateKeyPair("ES256");
  const mesh = await testMesh(config(a, JSON.stringify({ keys: [jwk] })));
  const apps = await Promise.all([
    app("reviews-v1", a(2, 10)),
    app("reviews-v2", a(2, 11)),
    app("ratings-good", a(2, 12)),
    app("ratings-bad", a(2, 13)),
    app("secure", a(2, 14)),
  ]);
  const c = client(a(1, 10));
  try {
    await mesh.ztunnel("node-a");
    await mesh.ztunnel("node-b");
    const wp = await mesh.waypoint("apps/waypoint");
    const reviews = a(3, 1);

    await t.step("header and path routing, response header modifier", async () => {
      const jason = await c.get(reviews, "/x", { "end-user": "jason" });
      assertEquals([jason.status, jason.body], [200, "reviews-v2 GET /x"]);
      const v1 = await c.get(reviews, "/v1only/a");
      assertEquals([v1.status, v1.body, v1.headers["x-route"]], [
        200,
        "reviews-v1 GET /v1only/a",
        "v1only",
      ]);
      // The app sees a traceparent; a caller's trace id is kept.
      const tid = "0af7651916cd43dd8448eb211c80319c";
      const traced = await c.get(reviews, "/v1only/t", {
        traceparent: `00-${tid}-b7ad6b7169203331-01`,
      });
      assertEquals(String(traced.headers["x-saw-traceparent"]).split("-")[1], tid);
    });

    await t.step(
      "an app that closes idle keep-alive connections: the next request opens a new one",
      async () => {
        for (const x of apps.slice(0, 2)) x.server!.keepAliveTimeout = 150;
        try {
          for (let i = 0; i < 3; i++) {
            const t0 = performance.now();
            const r = await c.get(reviews, `/v1only/idle${i}`);
            const ms = performance.now() - t0;
            assertEquals([r.status, r.body], [200, `reviews-v1 GET /v1only/idle${i}`]);
            assertOk(ms < 1000, `request ${i} took ${Math.round(ms)} ms`);
            // Longer than the app's keep-alive timeout: it closes the pooled connection.
            await new Promise((r) => setTimeout(r, 400));
          }
        } finally {
          for (const x of apps.slice(0, 2)) x.server!.keepAliveTimeout = 5000;
        }
      },
    );

    await t.step("a 90/10 split lands within ±5 points over 1,000 requests", async () => {
      let v2 = 0;
      for (let i = 0; i < 1000; i++) {
        const r = await c.get(reviews, "/split");
        assertEquals(r.status, 200);
        if (r.body.startsWith("reviews-v2")) v2++;
      }
      assertOk(v2 >= 50 && v2 <= 150, `reviews-v2 got ${v2} of 1000 (want 100 ± 50)`);
    });

    await t.step("retries turn the app's intermittent 503 into 200", async () => {
      for (let i = 0; i < 10; i++) {
        const r = await c.get(reviews, `/flaky/${i}`);
        assertEquals([r.status, r.body], [200, `reviews-v1 GET /flaky/${i}`]);
      }
    });

    await t.step("a slow app yields 504 at the route's request timeout", async () => {
      const t0 = performance.now();
      const r = await c.get(reviews, "/slow");
      const ms = performance.now() - t0;
      assertEquals([r.status, r.body.trim()], [504, "upstream request timeout"]);
      assertOk(ms >= 280 && ms < 1500, `504 after ${Math.round(ms)} ms (timeout 300 ms)`);
    });

    await t.step("RequestRedirect answers 301 with the rewritten Location", async () => {
      const r = await c.get(reviews, "/old/page?q=1");
      assertEquals(r.status, 301);
      assertEquals(r.headers.location, `http://${reviews}/new/page?q=1`);
    });

    await t.step(
      "fault injection (abort 418, 200 ms delay) and a local rate limit (429)",
      async () => {
        const before = apps[0].hits;
        const f = await c.get(reviews, "/fault/x");
        assertEquals([f.status, f.body.trim()], [418, "fault filter abort"]);
        assertEquals(apps[0].hits, before, "an aborted request never reaches the app");
        const t0 = performance.now();
        const d = await c.get(reviews, "/delayed/x");
        const ms = performance.now() - t0;
        assertEquals(d.status, 200);
        assertOk(ms >= 190, `delayed by ${Math.round(ms)} ms`);
        const statuses: number[] = [];
        let last;
        for (let i = 0; i < 5; i++) {
          last = await c.get(reviews, "/limited/x");
          statuses.push(last.status);
        }
        assertEquals(statuses, [200, 200, 200, 429, 429]);
        assertEquals(last!.body.trim(), "local_rate_limited");
        assertEquals(last!.headers["x-envoy-ratelimited"], "true");
        assertEquals(last!.headers["x-ratelimit-limit"], "3");
        assertEquals(last!.headers["x-ratelimit-remaining"], "0");
      },
    );

    await t.step(
      "L7 DENY policy answers 403 RBAC: access denied; nothing reaches the app",
      async () => {
        const before = apps[0].hits + apps[1].hits;
        const r = await c.get(reviews, "/admin/users");
        assertEquals([r.status, r.body.trim()], [403, "RBAC: access denied"]);
        assertEquals(apps[0].hits + apps[1].hits, before);
      },
    );

    await t.step("an outlier is ejected after consecutive 5xx and traffic recovers", async () => {
      const ratings = a(3, 4);
      // Round robin sends every other try to ratings-bad (always 503); Istio's default retry
      // on 503 sends those to ratings-good, and 3 in a row eject ratings-bad.
      for (let i = 0; i < 20; i++) assertEquals((await c.get(ratings, "/r")).status, 200);
      const bad = apps[3].hits;
      assertEquals(bad, 3, "ejected after its third consecutive 5xx");
      for (let i = 0; i < 10; i++) assertEquals((await c.get(ratings, "/r")).status, 200);
      assertEquals(apps[3].hits, bad, "the ejected endpoint gets nothing while ejected");
      // After the base ejection time (1 s) it is tried again, fails, and is ejected again.
      await new Promise((r) => setTimeout(r, 2100));
      for (let i = 0; i < 10; i++) assertEquals((await c.get(ratings, "/r")).status, 200);
      assertOk(apps[3].hits > bad && apps[3].hits <= bad + 3, `hits ${apps[3].hits}`);
    });

    await t.step("JWT: valid accepted (identity passed on), invalid 401, missing 403", async () => {
      const secure = a(3, 5);
      const token = (key: CryptoKey, claims: Record<string, unknown> = {}) =>
        new SignJWT({ ...claims })
          .setProtectedHeader({ alg: "ES256", kid: "k1" })
          .setIssuer(ISSUER)
          .setSubject("alice")
          .setAudience("secure-api")
          .setIssuedAt()
          .setExpirationTime("5m")
          .sign(key);
      const ok = await c.get(secure, "/s", { authorization: `Bearer ${await token(privateKey)}` });
      assertEquals([ok.status, ok.body], [200, "secure GET /s"]);
      const wrongKey = await c.get(secure, "/s", {
        authorization: `Bearer ${await token(other.privateKey)}`,
      });
      assertEquals([wrongKey.status, wrongKey.body.trim()], [401, "Jwt verification fails"]);
      const expired = await new SignJWT({})
        .setProtectedHeader({ alg: "ES256", kid: "k1" })
        .setIssuer(ISSUER)
        .setSubject("alice")
        .setAudience("secure-api")
        .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
        .sign(privateKey);
      const exp = await c.get(secure, "/s", { authorization: `Bearer ${expired}` });
      assertEquals([exp.status, exp.body.trim()], [401, "Jwt is expired"]);
      const none = `${btoa('{"alg":"none"}').replace(/=/g, "")}.${
        btoa(`{"iss":"${ISSUER}","sub":"x"}`).replace(/=/g, "")
      }.`;
      const algNone = await c.get(secure, "/s", { authorization: `Bearer ${none}` });
      assertEquals(algNone.status, 401);
      const missing = await c.get(secure, "/s");
      assertEquals([missing.status, missing.body.trim()], [403, "RBAC: access denied"]);
    });

    await t.step("request metrics: codes and flags by source and destination", () => {
      const text = wp.metricsText();
      const count = (code: string, flags: string) =>
        text.split("\n").filter((l) =>
          l.startsWith("istio_requests_total{") && l.includes(`response_code="${code}"`) &&
          l.includes(`response_flags="${flags}"`)
        ).reduce((n, l) => n + Number(l.split(" ").pop()), 0);
      assertOk(count("200", "-") >= 1000, "200s");
      assertEquals(count("504", "UT"), 1);
      assertEquals(count("418", "FI"), 1);
      assertEquals(count("429", "RL"), 2);
      assertEquals(count("403", "RBAC"), 2);
      assertOk(count("401", "UAEX") >= 3, "401s");
      assertIncludes(text, 'destination_workload="reviews-v2"');
      assertIncludes(text, 'destination_service="reviews.apps.svc.cluster.local"');
    });

    await t.step(
      "graceful stop: a request in flight completes, idle keep-alive tunnels close, the waypoint stops long before the deadline",
      async () => {
        // The client holds kept-alive connections (and so tunnels) from the steps above.
        const inflight = c.get(reviews, "/delayed/last");
        await new Promise((r) => setTimeout(r, 50));
        const t0 = performance.now();
        const stopped = wp.shutdown("test", 10_000);
        const r = await inflight;
        assertEquals([r.status, r.body], [200, "reviews-v1 GET /delayed/last"]);
        assertEquals(r.headers.connection, "close", "the last response on its connection");
        await stopped;
        const ms = performance.now() - t0;
        assertOk(ms < 3000, `stopped after ${Math.round(ms)} ms (deadline 10 s)`);
      },
    );
  } finally {
    c.close();
    for (const x of apps) x.close();
    await mesh.close();
  }
});
