/**
 * The systemd units of deploy/systemd read the way systemd reads them, for
 * tests: unit and environment files, `Exec*=` command lines expanded with the
 * unit's environment, time spans, a root tree for `systemd-analyze verify`,
 * and a stand-in for /usr/local/bin/ambit that runs ambit from source.
 *
 * @module
 */
import { selfCommand } from "../../mod/lab/self.ts";

/** deploy/systemd/ (ends with "/"). */
export const DEPLOY_DIR = new URL("../../deploy/systemd/", import.meta.url).pathname;

/** The unit files shipped, and an instance name to verify each by. */
export const UNITS: readonly { file: string; instance: string; env: string }[] = [
  { file: "ambit-ztunnel@.service", instance: "ambit-ztunnel@blue.service", env: "ztunnel.env" },
  {
    file: "ambit-waypoint@.service",
    instance: "ambit-waypoint@green.service",
    env: "waypoint.env",
  },
  { file: "ambit-ca.service", instance: "ambit-ca.service", env: "ca.env" },
];

/** Where the units say the binary is. */
export const AMBIT_BIN = "/usr/local/bin/ambit";

/** A parsed unit file: every `Key=value` of every section, in order. */
export class UnitFile {
  constructor(readonly sections: ReadonlyMap<string, readonly [string, string][]>) {}

  /** Every value of `key` in `section` (settings that may repeat). */
  all(section: string, key: string): string[] {
    return (this.sections.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v);
  }

  /** The value of a single-valued setting (the last one wins, as in systemd). */
  get(section: string, key: string): string | undefined {
    return this.all(section, key).at(-1);
  }
}

/** Parses unit file text: sections, `#`/`;` comments, lines continued with a trailing backslash. */
export function parseUnit(text: string): UnitFile {
  const sections = new Map<string, [string, string][]>();
  let current: [string, string][] | undefined;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i].trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    while (line.endsWith("\\") && i + 1 < lines.length) {
      line = line.slice(0, -1) + " " + lines[++i].trim();
    }
    const section = /^\[([^\]]+)\]$/.exec(line);
    if (section) {
      current = [];
      sections.set(section[1], current);
      continue;
    }
    const eq = line.indexOf("=");
    if (eq <= 0 || !current) throw new SyntaxError(`not a unit file line: ${JSON.stringify(line)}`);
    current.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return new UnitFile(sections);
}

/** Reads and parses deploy/systemd/`file`. */
export async function readUnit(file: string): Promise<UnitFile> {
  return parseUnit(await Deno.readTextFile(DEPLOY_DIR + file));
}

/** Splits at whitespace, honouring double and single quotes and backslash escapes. */
export function splitWords(s: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === "\\" && quote === '"' && i + 1 < s.length) word += s[++i];
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      word ??= "";
    } else if (c === "\\" && i + 1 < s.length) {
      word = (word ?? "") + s[++i];
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else word = (word ?? "") + c;
  }
  if (quote) throw new SyntaxError(`unterminated ${quote} in ${JSON.stringify(s)}`);
  if (word !== undefined) words.push(word);
  return words;
}

/** Parses an `EnvironmentFile=`: `KEY=VALUE` lines, comments, optional quotes. */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new SyntaxError(`not an environment file line: ${JSON.stringify(line)}`);
    const v = m[2].trim();
    env[m[1]] = /^(["']).*\1$/.test(v) ? v.slice(1, -1) : v;
  }
  return env;
}

/** The environment a unit's processes get: its `Environment=` lines, then the env files over them. */
export function unitEnvironment(
  unit: UnitFile,
  ...files: Record<string, string>[]
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of unit.all("Service", "Environment")) {
    for (const word of splitWords(line)) {
      const eq = word.indexOf("=");
      if (eq <= 0) throw new SyntaxError(`Environment= word without "=": ${word}`);
      env[word.slice(0, eq)] = word.slice(eq + 1);
    }
  }
  return Object.assign(env, ...files);
}

/**
 * Expands an `Exec*=` line as systemd does: `${VAR}` becomes the value inside
 * its word, a word that is exactly `$VAR` becomes the value split at
 * whitespace (zero or more words). Prefixes (`-`, `@`, `+`, `!`) and `%`
 * specifiers are not used by ambit's units and are refused here.
 */
export function expandExec(line: string, env: Record<string, string>): string[] {
  if (/^[-@+!:]/.test(line)) throw new SyntaxError(`unsupported Exec prefix in ${line}`);
  if (line.includes("%")) throw new SyntaxError(`unsupported % specifier in ${line}`);
  const out: string[] = [];
  for (const word of splitWords(line)) {
    const whole = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(word);
    if (whole) {
      out.push(...(env[whole[1]] ?? "").split(/\s+/).filter((w) => w !== ""));
      continue;
    }
    out.push(word.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, k) => env[k] ?? ""));
  }
  return out;
}

/** A systemd time span (`30s`, `1min 30s`, `90`, `250ms`) in milliseconds. */
export function timespanMs(v: string): number {
  const unit: Record<string, number> = {
    us: 0.001,
    ms: 1,
    s: 1000,
    sec: 1000,
    "": 1000,
    m: 60_000,
    min: 60_000,
    h: 3_600_000,
    hr: 3_600_000,
    d: 86_400_000,
  };
  let total = 0;
  const re = /\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)/y;
  let m;
  let pos = 0;
  while (pos < v.length && (m = re.exec(v)) !== null) {
    if (!(m[2] in unit)) throw new SyntaxError(`unknown time unit "${m[2]}" in "${v}"`);
    total += Number(m[1]) * unit[m[2]];
    pos = re.lastIndex;
  }
  if (pos !== v.length || v.trim() === "") throw new SyntaxError(`not a time span: "${v}"`);
  return total;
}

/** Single-quotes a word for sh. */
export function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * Writes `dir/ambit`, an executable stand-in for the compiled binary: it runs
 * ambit from source with the binary's flags (selfCommand) and a copy of the
 * npm cache that any user can read, so the units' commands can run as an
 * unprivileged user. Returns its path.
 */
export async function writeAmbitStandIn(dir: string): Promise<string> {
  const info = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
  const denoDir = JSON.parse(new TextDecoder().decode(info.stdout)).denoDir as string;
  const cache = `${dir}/deno-dir`;
  await Deno.mkdir(cache, { recursive: true });
  const cp = await new Deno.Command("cp", { args: ["-r", `${denoDir}/npm`, `${cache}/npm`] })
    .output();
  if (!cp.success) {
    throw new Error(`copying the npm cache failed: ${new TextDecoder().decode(cp.stderr)}`);
  }
  await new Deno.Command("chmod", { args: ["-R", "a+rX", cache] }).output();
  const path = `${dir}/ambit`;
  await Deno.writeTextFile(
    path,
    "#!/bin/sh\n# ambit from source, as the compiled binary runs (tests/deploy/_systemd.ts)\n" +
      `DENO_DIR=${shQuote(cache)} exec ${selfCommand().map(shQuote).join(" ")} "$@"\n`,
    { mode: 0o755 },
  );
  await Deno.chmod(path, 0o755);
  return path;
}

/**
 * Builds a file system root for `systemd-analyze verify --root`: the host's
 * system units (sysinit.target and friends), `/usr/bin/kill`, the shipped
 * units (and `dropIns`, paths relative to /etc/systemd/system) and an
 * executable at /usr/local/bin/ambit (a copy of `ambit`, e.g. the stand-in),
 * so verify checks the unit files unchanged.
 */
export async function verifyRoot(
  dir: string,
  o: { ambit?: string; dropIns?: Record<string, string> } = {},
): Promise<void> {
  await Deno.mkdir(`${dir}/etc/systemd/system`, { recursive: true });
  await Deno.mkdir(`${dir}/usr/lib/systemd`, { recursive: true });
  await Deno.mkdir(`${dir}/usr/local/bin`, { recursive: true });
  await Deno.mkdir(`${dir}/usr/bin`, { recursive: true });
  const run = async (cmd: string, args: string[]) => {
    const r = await new Deno.Command(cmd, { args, stderr: "piped" }).output();
    if (!r.success) {
      throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(r.stderr)}`);
    }
  };
  await run("cp", ["-a", "/usr/lib/systemd/system", `${dir}/usr/lib/systemd/`]);
  await run("cp", ["/usr/bin/kill", `${dir}/usr/bin/kill`]);
  await Deno.symlink("usr/bin", `${dir}/bin`);
  for (const u of UNITS) {
    await Deno.copyFile(DEPLOY_DIR + u.file, `${dir}/etc/systemd/system/${u.file}`);
  }
  for (const [path, text] of Object.entries(o.dropIns ?? {})) {
    const full = `${dir}/etc/systemd/system/${path}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(full, text);
  }
  if (o.ambit) await Deno.copyFile(o.ambit, `${dir}${AMBIT_BIN}`);
  else await Deno.writeTextFile(`${dir}${AMBIT_BIN}`, "#!/bin/sh\nexit 0\n");
  await Deno.chmod(`${dir}${AMBIT_BIN}`, 0o755);
}
