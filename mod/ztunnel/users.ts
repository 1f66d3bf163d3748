/**
 * OS user names to uids, from /etc/passwd.
 *
 * @module
 */

/** Parses passwd text into name → uid. */
export function parsePasswd(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const f = line.split(":");
    if (f.length >= 3 && /^[0-9]+$/.test(f[2])) out.set(f[0], Number(f[2]));
  }
  return out;
}

/** The uid of `user` (a uid passes through); undefined when unknown. */
export async function resolveUser(
  user: string | number,
  opts: { passwdPath?: string } = {},
): Promise<number | undefined> {
  if (typeof user === "number") return user;
  if (/^[0-9]+$/.test(user)) return Number(user);
  try {
    return parsePasswd(await Deno.readTextFile(opts.passwdPath ?? "/etc/passwd")).get(user);
  } catch {
    return undefined;
  }
}
