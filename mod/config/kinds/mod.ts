/**
 * The registry of every resource kind ambit reads.
 *
 * @module
 */
import type { KindDef } from "../kind.ts";
import { Mesh, Node } from "./mesh.ts";
import { Namespace } from "./namespace.ts";
import { Service } from "./service.ts";
import { WorkloadEntry } from "./workload_entry.ts";

/** Every supported kind, in the order the reference documents them. */
// deno-lint-ignore no-explicit-any
export const KINDS: readonly KindDef<any>[] = [
  Mesh,
  Node,
  Namespace,
  WorkloadEntry,
  Service,
];

/** Kinds by name. */
// deno-lint-ignore no-explicit-any
export const KINDS_BY_NAME: ReadonlyMap<string, KindDef<any>> = new Map(
  KINDS.map((k) => [k.kind, k]),
);
