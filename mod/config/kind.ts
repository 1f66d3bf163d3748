/**
 * The shape every mesh resource kind is described with, and the resource
 * envelope (`apiVersion`, `kind`, `metadata`, `spec`) they share.
 *
 * @module
 */
import type { Path, Reporter, Type } from "./schema.ts";

/** Where a resource came from: file and the line its document starts on. */
export interface Source {
  readonly file: string;
  readonly line: number;
  /** Index of the document within its file (0-based). */
  readonly doc: number;
}

/** Kubernetes object metadata, as far as ambit reads it. */
export interface Metadata {
  readonly name: string;
  /** Set for namespaced kinds (default "default"); absent for cluster-scoped kinds. */
  readonly namespace?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** RFC 3339; used for Gateway API route precedence ("oldest route wins"). */
  readonly creationTimestamp?: string;
}

/** A checked, defaulted resource. `S` is the checked spec type. */
export interface Resource<S = unknown> {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: Metadata;
  readonly spec: S;
  readonly source: Source;
}

/** A reference from one resource to another, for the cross-reference check. */
export interface Reference {
  /** Field path of the reference inside the referring resource. */
  readonly path: Path;
  /** Kinds that may satisfy it, e.g. ["Service"] or ["Service", "ServiceEntry"]. */
  readonly kinds: readonly string[];
  /** Namespace of the target (ignored for cluster-scoped kinds). */
  readonly namespace?: string;
  readonly name: string;
  /** `warning` when a dangling reference is legal but suspicious. Default error. */
  readonly severity?: "error" | "warning";
  /** Appended to the dangling-reference message. */
  readonly hint?: string;
}

/** Everything the loader needs to know about one kind. */
export interface KindDef<S = unknown> {
  readonly kind: string;
  /** Accepted apiVersions; the first is the one to write. */
  readonly apiVersions: readonly string[];
  readonly namespaced: boolean;
  /** One paragraph for the reference. */
  readonly doc: string;
  /** Schema of `spec`. Undefined for kinds without a spec (Namespace). */
  readonly spec?: Type<S>;
  /** Whether `spec` must be present (otherwise an absent spec checks as `{}`). */
  readonly specRequired?: boolean;
  /** References this resource makes to others (checked after all resources load). */
  references?(res: Resource<S>): Reference[];
  /** Checks that need the metadata as well as the spec. */
  check?(res: Resource<S>, r: Reporter): void;
  /** A small example document for the reference. */
  readonly example?: string;
}

/** Declares a kind; a helper so `S` is inferred from the spec schema. */
export function defineKind<S>(def: KindDef<S>): KindDef<S> {
  return def;
}
