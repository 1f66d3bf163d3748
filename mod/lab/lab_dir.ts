/**
 * Where `ambit lab up` keeps a running lab by default.
 *
 * @module
 */

/** The default lab directory: per user, so `lab down` finds what `lab up` started. */
export function defaultLabDir(): string {
  const base = Deno.env.get("XDG_RUNTIME_DIR") ?? Deno.env.get("TMPDIR") ?? "/tmp";
  let uid = "";
  try {
    uid = `-${Deno.uid() ?? ""}`;
  } catch { /* no uid on this platform */ }
  return `${base.replace(/\/$/, "")}/ambit-lab${uid}`;
}
