/**
 * The registry of every resource kind ambit reads.
 *
 * @module
 */
import type { KindDef } from "../kind.ts";
import { AuthorizationPolicy } from "./authorization_policy.ts";
import { DestinationRule } from "./destination_rule.ts";
import { Gateway } from "./gateway.ts";
import { GRPCRoute } from "./grpc_route.ts";
import { HTTPFault } from "./http_fault.ts";
import { HTTPRoute } from "./http_route.ts";
import { LocalRateLimit } from "./local_rate_limit.ts";
import { Mesh, Node } from "./mesh.ts";
import { Namespace } from "./namespace.ts";
import { PeerAuthentication } from "./peer_authentication.ts";
import { RequestAuthentication } from "./request_authentication.ts";
import { Service } from "./service.ts";
import { ServiceEntry } from "./service_entry.ts";
import { WorkloadEntry } from "./workload_entry.ts";

/** Every supported kind, in the order the reference documents them. */
// deno-lint-ignore no-explicit-any
export const KINDS: readonly KindDef<any>[] = [
  Mesh,
  Node,
  Namespace,
  WorkloadEntry,
  Service,
  ServiceEntry,
  Gateway,
  HTTPRoute,
  GRPCRoute,
  HTTPFault,
  LocalRateLimit,
  AuthorizationPolicy,
  PeerAuthentication,
  RequestAuthentication,
  DestinationRule,
];

/** Kinds by name. */
// deno-lint-ignore no-explicit-any
export const KINDS_BY_NAME: ReadonlyMap<string, KindDef<any>> = new Map(
  KINDS.map((k) => [k.kind, k]),
);
