/**
 * Waiting for the signals that stop a long-running role.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";

/** Resolves with the signal name when SIGTERM or SIGINT arrives. */
export function untilStopSignal(logger: Logger): Promise<string> {
  return new Promise((resolve) => {
    const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
    const handlers = signals.map((sig) => {
      const h = () => {
        for (const [s, f] of handlers) Deno.removeSignalListener(s, f);
        logger.info("stopping", { signal: sig });
        resolve(sig);
      };
      Deno.addSignalListener(sig, h);
      return [sig, h] as const;
    });
  });
}
