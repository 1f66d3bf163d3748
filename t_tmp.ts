import { compileSourcesSync } from "./mod/config/compile.ts";
import { readSources } from "./mod/config/load.ts";
import { ACCEPTANCE, writeScaleConfig } from "./scripts/gen_scale_config.ts";
const dir = await Deno.makeTempDir();
await writeScaleConfig(dir, ACCEPTANCE);
const r = compileSourcesSync(await readSources(dir));
const s = r.snapshot!;
for (let k = 0; k < 3; k++) {
  let t = performance.now();
  structuredClone(r);
  console.log("clone all", (performance.now() - t) | 0);
  t = performance.now();
  structuredClone(s.resources);
  console.log("clone resources", (performance.now() - t) | 0);
  t = performance.now();
  structuredClone([...s.workloads.values()]);
  console.log("clone workloads", (performance.now() - t) | 0);
  t = performance.now();
  structuredClone(s.workloadsByAddress);
  console.log("clone byAddress", (performance.now() - t) | 0);
  t = performance.now();
  const j = JSON.stringify(s.resources);
  console.log("json resources", (performance.now() - t) | 0, j.length);
  t = performance.now();
  JSON.parse(j);
  console.log("parse resources", (performance.now() - t) | 0);
}
await Deno.remove(dir, { recursive: true });
