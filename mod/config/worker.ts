/**
 * Worker entry: reads and compiles a config off the main thread, so a large
 * reload never stalls the data plane. Posts back a {@link WorkerReply}.
 *
 * @module
 */
import { compilePath } from "./compile.ts";
import type { CompileResult } from "./compile.ts";
import { type EncodedSnapshot, encodeSnapshot } from "./snapshot_codec.ts";

/** Message the main thread sends. */
export interface WorkerRequest {
  readonly id: number;
  readonly path: string;
}

/** A compile result with the snapshot encoded for a cheap transfer. */
export interface EncodedResult {
  readonly issues: CompileResult["issues"];
  readonly digest: string;
  readonly bytes: number;
  readonly snapshot?: EncodedSnapshot;
}

/** Message the worker answers with. */
export type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly result: EncodedResult }
  | { readonly id: number; readonly ok: false; readonly error: string; readonly code?: string };

// deno-lint-ignore no-explicit-any
const self_ = globalThis as any;
self_.onmessage = async (e: MessageEvent<WorkerRequest>) => {
  const { id, path } = e.data;
  try {
    const r = await compilePath(path);
    const result: EncodedResult = {
      issues: r.issues,
      digest: r.digest,
      bytes: r.bytes,
      snapshot: r.snapshot ? encodeSnapshot(r.snapshot) : undefined,
    };
    self_.postMessage({ id, ok: true, result } satisfies WorkerReply);
  } catch (err) {
    self_.postMessage(
      {
        id,
        ok: false,
        error: (err as Error).message,
        code: (err as { code?: string }).code,
      } satisfies WorkerReply,
    );
  }
};
