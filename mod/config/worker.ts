/**
 * Worker entry: reads and compiles a config off the main thread, so a large
 * reload never stalls the data plane. Posts back a {@link WorkerReply}.
 *
 * @module
 */
import { compilePath } from "./compile.ts";
import type { CompileResult } from "./compile.ts";

/** Message the main thread sends. */
export interface WorkerRequest {
  readonly id: number;
  readonly path: string;
}

/** Message the worker answers with. */
export type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly result: CompileResult }
  | { readonly id: number; readonly ok: false; readonly error: string; readonly code?: string };

// deno-lint-ignore no-explicit-any
const self_ = globalThis as any;
self_.onmessage = async (e: MessageEvent<WorkerRequest>) => {
  const { id, path } = e.data;
  try {
    const result = await compilePath(path);
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
