/**
 * The single binary: `deno task compile` passes exactly the flags the tests
 * run ambit with, the code reads no file next to its sources at run time,
 * and where the runtime download is not reachable the task says so.
 */
import { assertEquals, assertIncludes, assertOk } from "./_util/asserts.ts";
import { REPO_ROOT } from "./_util/proc.ts";
import { AMBIT_RUN_FLAGS } from "../mod/permissions.ts";
import { selfCommand } from "../mod/lab/self.ts";
import { compileArgs, downloadError, TARGETS } from "../scripts/compile.ts";

Deno.test("compile: both Linux targets, with exactly the run flags the tests start ambit with", () => {
  assertEquals(TARGETS, ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]);
  for (const target of TARGETS) {
    const args = compileArgs(target);
    assertEquals(args.slice(0, 1 + AMBIT_RUN_FLAGS.length), ["compile", ...AMBIT_RUN_FLAGS]);
    assertEquals(args.slice(-5), [
      "--target",
      target,
      "--output",
      `${REPO_ROOT}dist/ambit-${target}`,
      `${REPO_ROOT}main.ts`,
    ]);
    // The config worker is loaded by URL: it must be in the binary.
    assertIncludes(args.join(" "), `--include ${REPO_ROOT}mod/config/worker.ts`);
  }
  // From source, child processes get the same flags (tests/_util/proc.ts uses selfCommand()).
  const self = selfCommand();
  assertEquals(self.slice(1, 2 + AMBIT_RUN_FLAGS.length), ["run", ...AMBIT_RUN_FLAGS]);
  // No --allow-all, no --allow-ffi, no broader unstable set.
  assertOk(!AMBIT_RUN_FLAGS.some((f) => /allow-all|allow-ffi|--unstable$/.test(f)));
});

Deno.test("compile: nothing under mod/ reads a file relative to its own source at run time", async () => {
  // import.meta.url may only name what the binary embeds: the config worker
  // (compiled in with --include) and main.ts for `deno run` from source.
  const allowed = new Map([
    ["mod/config/store.ts", /new Worker\(new URL\("\.\/worker\.ts", import\.meta\.url\)/],
    ["mod/lab/self.ts", /new URL\("\.\.\/\.\.\/main\.ts", import\.meta\.url\)\.pathname/],
  ]);
  const offenders: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(`${REPO_ROOT}${dir}`)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (path.endsWith(".ts") && !path.endsWith("_test.ts") && !e.name.startsWith("_")) {
        const text = await Deno.readTextFile(`${REPO_ROOT}${path}`);
        text.split("\n").forEach((line, i) => {
          if (!/import\.meta\.(url|dirname|filename|resolve)/.test(line)) return;
          if (allowed.get(path)?.test(line)) return;
          offenders.push(`${path}:${i + 1}: ${line.trim()}`);
        });
      }
    }
  };
  await walk("mod");
  assertEquals(offenders, [], "source-relative paths in mod/ break the compiled binary");
  // The lab's config is embedded (generated), not read from config/lab.
  const lab = await Deno.readTextFile(`${REPO_ROOT}mod/lab/lab_config.ts`);
  assertIncludes(lab, "export const LAB_CONFIG");
});

Deno.test("compile: the task builds the binary, or says clearly that the runtime download is unreachable", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "compile", "--target", "x86_64-unknown-linux-gnu"],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  const bin = `${REPO_ROOT}dist/ambit-x86_64-unknown-linux-gnu`;
  if (out.code === 0) {
    // Where the download works: the binary runs, with no Deno on its command line.
    const v = await new Deno.Command(bin, { args: ["version", "--output", "json"] }).output();
    assertEquals(v.code, 0);
    assertEquals(JSON.parse(new TextDecoder().decode(v.stdout)).deno, Deno.version.deno);
    return;
  }
  assertEquals(out.code, 1, stderr);
  assertIncludes(stderr, "deno compile needs to download the Deno runtime for this target");
  assertIncludes(stderr, "not reachable from this machine");
  assertIncludes(stderr, "denort-x86_64-unknown-linux-gnu");
});

Deno.test("compile: downloadError picks the line that names the failed download", () => {
  const err = [
    "\x1b[0m\x1b[1m\x1b[31merror\x1b[0m: Writing deno compile executable to temporary file 'x'",
    "",
    "Caused by:",
    "    0: Setting up base binary.",
    "    1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x.zip): dns error",
    "    2: client error (Connect)",
  ].join("\n");
  assertEquals(
    downloadError(err),
    "error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x.zip): dns error",
  );
  assertEquals(downloadError("error: something else\nmore"), "error: something else");
});
