/**
 * A small declarative schema language for mesh resources.
 *
 * One schema does three jobs: it validates a parsed YAML value (reporting every
 * problem with its field path, not just the first), it applies the defaults an
 * API server would, and it describes itself so the config reference in the
 * README is generated from the same source the validator uses.
 *
 * @module
 */

/** A path into a document, e.g. `["spec", "rules", 0, "to"]`. */
export type Path = readonly (string | number)[];

/** Formats a path the way Kubernetes tools do: `spec.rules[0].to`. */
export function formatPath(path: Path): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(part)) out += out === "" ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

/** How bad a reported problem is: errors reject a config, warnings do not. */
export type Severity = "error" | "warning";

/** One problem found in a document. */
export interface Issue {
  /** Where in the document. */
  readonly path: Path;
  /** What is wrong, quoting the offending value. */
  readonly message: string;
  /** What to do about it (short, fits in parentheses). */
  readonly hint?: string;
  readonly severity: Severity;
}

/** Collects issues while a document is checked. */
export class Reporter {
  readonly issues: Issue[] = [];
  /** Records an error at `path`. */
  error(path: Path, message: string, hint?: string): void {
    this.issues.push({ path: [...path], message, hint, severity: "error" });
  }
  /** Records a warning at `path`. */
  warn(path: Path, message: string, hint?: string): void {
    this.issues.push({ path: [...path], message, hint, severity: "warning" });
  }
  /** Whether any error (not warning) was recorded. */
  get failed(): boolean {
    return this.issues.some((i) => i.severity === "error");
  }
}

/** Returned by a type when the value did not check; the reason is already reported. */
export const INVALID: unique symbol = Symbol("invalid");
/** The type of {@link INVALID}. */
export type Invalid = typeof INVALID;

/** A schema type: checks a value and returns it normalised, or {@link INVALID}. */
export interface Type<T> {
  /** Short human name used in messages and docs: "string", "list of port". */
  readonly name: string;
  /** Checks `value` found at `at`; reports problems to `r`. */
  check(value: unknown, at: Path, r: Reporter): T | Invalid;
  /** For object types: the fields, so docs can be generated. */
  readonly object?: ObjectInfo;
  /** For lists and maps: the element type, so docs can follow it. */
  readonly element?: Type<unknown>;
}

/** What the docs generator needs to know about an object type. */
export interface ObjectInfo {
  /** Name of the object type in the reference, e.g. "HTTPRouteMatch". */
  readonly title: string;
  readonly doc?: string;
  readonly fields: Readonly<Record<string, AnyField>>;
}

/** A field of an object type. */
export interface Field<T, Present extends boolean> {
  readonly type: Type<T>;
  readonly doc: string;
  readonly required: boolean;
  /** Value used when the field is absent (the API server's default). */
  readonly default?: () => T;
  /** Shown in docs for the default. */
  readonly defaultText?: string;
  /** Whether the default must itself be checked (nested objects with defaults). */
  readonly checkDefault?: boolean;
  /** Set when ambit knows the field upstream but does not support it. */
  readonly unsupported?: string;
  /** Marker for type inference only. */
  readonly _present?: Present;
}

// deno-lint-ignore no-explicit-any
type AnyField = Field<any, boolean>;

/** A required field. */
export function req<T>(type: Type<T>, doc: string): Field<T, true> {
  return { type, doc, required: true };
}

/** An optional field without a default. */
export function opt<T>(type: Type<T>, doc: string): Field<T, false> {
  return { type, doc, required: false };
}

/** An optional field that takes `value` when absent. */
export function def<T>(type: Type<T>, value: T, doc: string): Field<T, true> {
  const frozen = JSON.stringify(value);
  return {
    type,
    doc,
    required: false,
    default: () => JSON.parse(frozen),
    defaultText: typeof value === "string" && value !== "" ? value : frozen,
  };
}

/**
 * An object field that is always present: when absent it is checked as `{}`,
 * so the nested fields' own defaults apply.
 */
export function nested<T>(type: Type<T>, doc: string): Field<T, true> {
  return {
    type,
    doc,
    required: false,
    default: () => ({}) as T,
    defaultText: "{}",
    checkDefault: true,
  };
}

/** A field that upstream defines but ambit refuses, with the reason. */
export function unsupported(reason: string): Field<never, false> {
  return { type: never, doc: reason, required: false, unsupported: reason };
}

const never: Type<never> = {
  name: "unsupported",
  check: () => INVALID,
};

type Simplify<T> = { [K in keyof T]: T[K] } & unknown;
/** The checked value type of an object schema's fields. */
export type ObjectOf<F extends Record<string, AnyField>> = Simplify<
  & { -readonly [K in keyof F as F[K] extends Field<unknown, true> ? K : never]: FieldValue<F[K]> }
  & {
    -readonly [K in keyof F as F[K] extends Field<unknown, true> ? never : K]?: FieldValue<F[K]>;
  }
>;
type FieldValue<F> = F extends Field<infer T, boolean> ? T : never;
/** The checked value type of a schema type. */
export type Infer<T> = T extends Type<infer V> ? V : never;

/** Options for {@link obj}. */
export interface ObjOptions<T> {
  /** Title in the generated reference. */
  title: string;
  doc?: string;
  /** Extra checks across fields, run only when every field checked. */
  refine?: (value: T, at: Path, r: Reporter) => void;
}

/** An object with known fields; unknown fields are errors (with a did-you-mean hint). */
export function obj<F extends Record<string, AnyField>>(
  fields: F,
  options: ObjOptions<ObjectOf<F>>,
): Type<ObjectOf<F>> {
  const names = Object.keys(fields);
  return {
    name: options.title,
    object: { title: options.title, doc: options.doc, fields },
    check(value, at, r) {
      if (!isPlainObject(value)) {
        r.error(at, `expected an object (${options.title}), got ${describe(value)}`);
        return INVALID;
      }
      const out: Record<string, unknown> = {};
      let ok = true;
      for (const key of Object.keys(value)) {
        const f = fields[key];
        if (f === undefined) {
          const near = didYouMean(key, names);
          r.error([...at, key], `unknown field "${key}"`, near && `did you mean "${near}"?`);
          ok = false;
        } else if (f.unsupported !== undefined && value[key] !== null) {
          r.error([...at, key], `"${key}" is not supported by ambit`, f.unsupported);
          ok = false;
        }
      }
      for (const [key, f] of Object.entries(fields)) {
        if (f.unsupported !== undefined) continue;
        const v = value[key];
        if (v === undefined || v === null) {
          if (f.required) {
            r.error([...at, key], `missing required field "${key}"`, f.doc && firstSentence(f.doc));
            ok = false;
          } else if (f.default && f.checkDefault) {
            const checked = f.type.check(f.default(), [...at, key], r);
            if (checked === INVALID) ok = false;
            else out[key] = checked;
          } else if (f.default) out[key] = f.default();
          continue;
        }
        const checked = f.type.check(v, [...at, key], r);
        if (checked === INVALID) ok = false;
        else out[key] = checked;
      }
      if (!ok) return INVALID;
      const result = out as ObjectOf<F>;
      if (options.refine) {
        const before = r.issues.length;
        options.refine(result, at, r);
        if (r.issues.slice(before).some((i) => i.severity === "error")) return INVALID;
      }
      return result;
    },
  };
}

/** Options for {@link str}. */
export interface StrOptions {
  /** Name in messages and docs, e.g. "IP address". Default "string". */
  name?: string;
  /** Returns a message when the string is not acceptable. */
  validate?: (s: string) => string | undefined;
  /** Hint shown when `validate` rejects. */
  hint?: string;
  /** Smallest length (default 0). */
  minLength?: number;
  /** Largest length (default unlimited). */
  maxLength?: number;
}

/** A string. */
export function str(options: StrOptions = {}): Type<string> {
  const name = options.name ?? "string";
  return {
    name,
    check(value, at, r) {
      if (typeof value !== "string") {
        r.error(at, `expected ${article(name)} ${name}, got ${describe(value)}`, quoteHint(value));
        return INVALID;
      }
      if (options.minLength !== undefined && value.length < options.minLength) {
        r.error(
          at,
          options.minLength === 1
            ? "must not be empty"
            : `must be at least ${options.minLength} characters`,
        );
        return INVALID;
      }
      if (options.maxLength !== undefined && value.length > options.maxLength) {
        r.error(at, `is ${value.length} characters long; at most ${options.maxLength} are allowed`);
        return INVALID;
      }
      const problem = options.validate?.(value);
      if (problem !== undefined) {
        r.error(at, problem, options.hint);
        return INVALID;
      }
      return value;
    },
  };
}

/** One of a fixed set of strings (case-sensitive, as upstream). */
export function oneOf<const V extends string>(values: readonly V[]): Type<V> {
  const name = values.join(" | ");
  return {
    name,
    check(value, at, r) {
      if (typeof value === "string" && (values as readonly string[]).includes(value)) {
        return value as V;
      }
      const near = typeof value === "string" ? didYouMean(value, values) : undefined;
      r.error(
        at,
        `${describe(value)} is not one of ${values.join(", ")}`,
        near ? `did you mean "${near}"?` : undefined,
      );
      return INVALID;
    },
  };
}

/** One of a fixed set of numbers. */
export function oneOfNumber<const V extends number>(values: readonly V[]): Type<V> {
  return {
    name: values.join(" | "),
    check(value, at, r) {
      if (typeof value === "number" && (values as readonly number[]).includes(value)) {
        return value as V;
      }
      r.error(at, `${describe(value)} is not one of ${values.join(", ")}`);
      return INVALID;
    },
  };
}

/** Options for {@link int}. */
export interface IntOptions {
  name?: string;
  min?: number;
  max?: number;
}

/** An integer, optionally bounded. */
export function int(options: IntOptions = {}): Type<number> {
  const name = options.name ?? "integer";
  return {
    name,
    check(value, at, r) {
      if (typeof value !== "number" || !Number.isInteger(value)) {
        r.error(at, `expected ${article(name)} ${name}, got ${describe(value)}`);
        return INVALID;
      }
      if (options.min !== undefined && value < options.min) {
        r.error(at, `${value} is below the minimum ${options.min}`);
        return INVALID;
      }
      if (options.max !== undefined && value > options.max) {
        r.error(at, `${value} is above the maximum ${options.max}`);
        return INVALID;
      }
      return value;
    },
  };
}

/** Options for {@link num}. */
export interface NumOptions {
  /** Name in messages and docs. Default "number". */
  name?: string;
  min?: number;
  max?: number;
}

/** A finite number, fractions allowed (a protobuf `double`), optionally bounded. */
export function num(options: NumOptions = {}): Type<number> {
  const name = options.name ?? "number";
  return {
    name,
    check(value, at, r) {
      if (typeof value !== "number" || !Number.isFinite(value)) {
        r.error(at, `expected ${article(name)} ${name}, got ${describe(value)}`);
        return INVALID;
      }
      if (options.min !== undefined && value < options.min) {
        r.error(at, `${value} is below the minimum ${options.min}`);
        return INVALID;
      }
      if (options.max !== undefined && value > options.max) {
        r.error(at, `${value} is above the maximum ${options.max}`);
        return INVALID;
      }
      return value;
    },
  };
}

/** A TCP/UDP port number, 1 to 65535. Strings holding a number are refused. */
export function port(): Type<number> {
  return {
    name: "port",
    check(value, at, r) {
      if (typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535) {
        return value;
      }
      reportBadPort(value, at, r);
      return INVALID;
    },
  };
}

/**
 * A port written as a string, as Istio's AuthorizationPolicy does (`ports: ["8080"]`).
 * A bare number is accepted too, since YAML users write it that way.
 */
export function portString(): Type<string> {
  return {
    name: "port (string)",
    check(value, at, r) {
      const n = typeof value === "string" && /^[0-9]+$/.test(value) ? Number(value) : value;
      if (typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 65535) return String(n);
      reportBadPort(value, at, r);
      return INVALID;
    },
  };
}

function reportBadPort(value: unknown, at: Path, r: Reporter): void {
  if (typeof value === "number" && Number.isInteger(value)) {
    r.error(at, `${value} is not a port number`, "use a number from 1 to 65535");
  } else r.error(at, `${describe(value)} is not a port number`, "use a number from 1 to 65535");
}

/** A port number or a port name (Service `targetPort`). */
export function intOrString(): Type<number | string> {
  return {
    name: "port or port name",
    check(value, at, r) {
      if (typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 65535) {
        return value;
      }
      if (typeof value === "string" && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(value)) {
        return /^[0-9]+$/.test(value) ? Number(value) : value;
      }
      r.error(
        at,
        `${describe(value)} is neither a port number nor a port name`,
        "use 1-65535 or a lowercase name",
      );
      return INVALID;
    },
  };
}

/** A boolean. */
export function bool(): Type<boolean> {
  return {
    name: "boolean",
    check(value, at, r) {
      if (typeof value === "boolean") return value;
      r.error(at, `expected true or false, got ${describe(value)}`);
      return INVALID;
    },
  };
}

/** Options for {@link list}. */
export interface ListOptions<T> {
  minItems?: number;
  maxItems?: number;
  /** Key for duplicate detection; duplicates are errors. */
  uniqueBy?: (item: T) => string;
  /** What a duplicate is called in the message, e.g. "port name". */
  uniqueWhat?: string;
}

/** A list of `type`. */
export function list<T>(type: Type<T>, options: ListOptions<T> = {}): Type<T[]> {
  return {
    name: `list of ${type.name}`,
    element: type as Type<unknown>,
    check(value, at, r) {
      if (!Array.isArray(value)) {
        r.error(at, `expected a list of ${type.name}, got ${describe(value)}`);
        return INVALID;
      }
      if (options.minItems !== undefined && value.length < options.minItems) {
        r.error(
          at,
          options.minItems === 1
            ? "must have at least one item"
            : `must have at least ${options.minItems} items`,
        );
        return INVALID;
      }
      if (options.maxItems !== undefined && value.length > options.maxItems) {
        r.error(at, `has ${value.length} items; at most ${options.maxItems} are allowed`);
        return INVALID;
      }
      const out: T[] = [];
      let ok = true;
      const seen = new Map<string, number>();
      value.forEach((item, i) => {
        const checked = type.check(item, [...at, i], r);
        if (checked === INVALID) {
          ok = false;
          return;
        }
        if (options.uniqueBy) {
          const key = options.uniqueBy(checked);
          const first = seen.get(key);
          if (first !== undefined) {
            r.error(
              [...at, i],
              `duplicate ${options.uniqueWhat ?? "entry"} "${key}"`,
              `already at ${formatPath([...at, first])}`,
            );
            ok = false;
          } else seen.set(key, i);
        }
        out.push(checked);
      });
      return ok ? out : INVALID;
    },
  };
}

/** A map from string keys to `type` values. */
export function map<T>(type: Type<T>, key: Type<string> = str()): Type<Record<string, T>> {
  return {
    name: `map of ${key.name} to ${type.name}`,
    element: type as Type<unknown>,
    check(value, at, r) {
      if (!isPlainObject(value)) {
        r.error(at, `expected a map of ${key.name} to ${type.name}, got ${describe(value)}`);
        return INVALID;
      }
      const out: Record<string, T> = {};
      let ok = true;
      for (const [k, v] of Object.entries(value)) {
        if (key.check(k, [...at, k], r) === INVALID) {
          ok = false;
          continue;
        }
        const checked = type.check(v, [...at, k], r);
        if (checked === INVALID) ok = false;
        else out[k] = checked;
      }
      return ok ? out : INVALID;
    },
  };
}

/** Wraps a type with a different name and an extra check on its checked value. */
export function refine<T>(
  type: Type<T>,
  name: string,
  validate: (value: T) => string | undefined,
  hint?: string,
): Type<T> {
  return {
    name,
    object: type.object,
    element: type.element,
    check(value, at, r) {
      const v = type.check(value, at, r);
      if (v === INVALID) return INVALID;
      const problem = validate(v);
      if (problem !== undefined) {
        r.error(at, problem, hint);
        return INVALID;
      }
      return v;
    },
  };
}

/** Whether `v` is a plain object (a YAML mapping). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Describes a value for a message: `"http"`, `number 80`, `a list`, `an object`. */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? v.slice(0, 57) + "..." : v);
  if (typeof v === "number") return `number ${v}`;
  if (typeof v === "boolean") return `boolean ${v}`;
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  return typeof v;
}

/** "a" or "an" for `word`. */
function article(word: string): string {
  // Vowels, and acronyms read letter by letter that start with a vowel sound (HTTP, RFC).
  return /^[aeiouAEIOU]|^[FHLMNRSX][A-Z]/.test(word) ? "an" : "a";
}

function quoteHint(v: unknown): string | undefined {
  if (typeof v === "number" || typeof v === "boolean") return `quote it: "${v}"`;
  return undefined;
}

function firstSentence(s: string): string {
  const end = s.indexOf(". ");
  const first = end === -1 ? s : s.slice(0, end);
  return first.replace(/\.$/, "").replace(/^./, (c) => c.toLowerCase());
}

/** The closest candidate to `word` (case-insensitive equality or edit distance ≤ 2), if any. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    if (c.toLowerCase() === lower) return c;
    const d = editDistance(lower, c.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  const limit = word.length <= 4 ? 1 : 2;
  return bestDistance <= limit ? best : undefined;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(
        prev[j] + 1,
        cur[j - 1] + 1,
        prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = cur;
  }
  return prev[b.length];
}
