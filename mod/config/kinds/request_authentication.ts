/**
 * `RequestAuthentication` (security.istio.io/v1): JWT validation at waypoints.
 *
 * @module
 */
import { istioDuration, workloadSelector } from "../formats.ts";
import { defineKind } from "../kind.ts";
import { bool, def, list, obj, opt, req, str } from "../schema.ts";
import {
  checkTargeting,
  ISTIO_SECURITY,
  policyTargetReference,
  targetReferences,
} from "./policy_common.ts";

const jwks = str({
  name: "JWKS JSON",
  validate(s) {
    try {
      const v = JSON.parse(s);
      return Array.isArray(v?.keys) ? undefined : 'JWKS must be a JSON object with a "keys" array';
    } catch (e) {
      return `JWKS is not JSON: ${(e as Error).message}`;
    }
  },
});

const url = str({
  name: "URL",
  validate: (s) => {
    try {
      const u = new URL(s);
      return u.protocol === "https:" || u.protocol === "http:"
        ? undefined
        : `"${s}" is not an http(s) URL`;
    } catch {
      return `"${s}" is not a URL`;
    }
  },
});

const jwtRule = obj({
  issuer: req(str({ minLength: 1 }), "Expected iss claim."),
  audiences: opt(list(str()), "Accepted aud values; absent: any."),
  jwksUri: opt(url, "Where the public keys are fetched (cached and refreshed)."),
  jwks: opt(jwks, "Inline public keys (JWKS JSON)."),
  fromHeaders: opt(
    list(obj({
      name: req(str({ minLength: 1 }), "Header name."),
      prefix: opt(str(), 'Prefix before the token, e.g. "Bearer ".'),
    }, { title: "JWTHeader" })),
    "Where tokens are read from; default Authorization: Bearer.",
  ),
  fromParams: opt(list(str({ minLength: 1 })), "Query parameters carrying the token."),
  fromCookies: opt(list(str({ minLength: 1 })), "Cookies carrying the token."),
  outputPayloadToHeader: opt(
    str({ minLength: 1 }),
    "Header that receives the verified payload (base64url).",
  ),
  forwardOriginalToken: def(bool(), false, "Keep the token on the forwarded request."),
  outputClaimToHeaders: opt(
    list(obj({
      header: req(str({ minLength: 1 }), "Header to set."),
      claim: req(str({ minLength: 1 }), "Claim to copy."),
    }, { title: "ClaimToHeader" })),
    "Copy claims into request headers.",
  ),
  timeout: opt(istioDuration(), "Timeout for fetching jwksUri."),
}, {
  title: "JWTRule",
  refine(j, at, r) {
    if (j.jwks !== undefined && j.jwksUri !== undefined) {
      r.error([...at, "jwks"], "give jwks or jwksUri, not both");
    }
  },
});

/** Schema of `RequestAuthentication.spec`. */
export const requestAuthenticationSpec = obj({
  selector: opt(workloadSelector(), "Workloads it applies to."),
  targetRef: opt(policyTargetReference, "The Gateway (waypoint) or Service it applies to."),
  targetRefs: opt(list(policyTargetReference, { maxItems: 16 }), "Several targets."),
  jwtRules: opt(list(jwtRule, { maxItems: 4096 }), "Accepted token issuers."),
}, { title: "RequestAuthenticationSpec" });

/** The `RequestAuthentication` kind. */
export const RequestAuthentication = defineKind({
  kind: "RequestAuthentication",
  apiVersions: ISTIO_SECURITY,
  namespaced: true,
  doc: "JWT validation at waypoints: a request with an invalid token is refused (401); a request " +
    "without a token passes without a request identity (use AuthorizationPolicy requestPrincipals to require one).",
  spec: requestAuthenticationSpec,
  check(res, r) {
    checkTargeting(res.spec, res.metadata.namespace!, r);
  },
  references: (res) => targetReferences(res.spec, res.metadata.namespace!),
  example: `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt
  namespace: shop
spec:
  targetRefs:
  - kind: Service
    group: ""
    name: reviews
  jwtRules:
  - issuer: https://auth.example.com
    jwksUri: https://auth.example.com/.well-known/jwks.json`,
});
