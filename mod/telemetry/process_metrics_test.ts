import { assertEquals, assertOk } from "../../tests/_util/asserts.ts";
import { processFamilies } from "./process_metrics.ts";
import { renderPrometheus } from "./prometheus.ts";

Deno.test("processFamilies() reports this process's memory, CPU, start time and V8 heap", () => {
  const fams = processFamilies();
  const value = (name: string) => {
    const f = fams.find((x) => x.name === name);
    assertOk(f && f.type !== "histogram", name);
    const s = f.samples();
    assertEquals(s.length, 1, name);
    return s[0].value as number;
  };
  const rss = value("process_resident_memory_bytes");
  assertOk(rss > 10 * 2 ** 20 && rss < 4 * 2 ** 30, `rss ${rss}`);
  const heap = value("ambit_v8_heap_used_bytes");
  assertOk(heap > 0 && heap <= value("ambit_v8_heap_total_bytes"), `heap ${heap}`);
  assertOk(value("ambit_v8_external_bytes") >= 0);
  const cpu = value("process_cpu_seconds_total");
  let x = 0;
  for (let i = 0; i < 3e6; i++) x += i % 7;
  assertOk(x > 0 && value("process_cpu_seconds_total") > cpu, "CPU seconds grow with work");
  const start = value("process_start_time_seconds");
  assertOk(Math.abs(start - (Date.now() - performance.now()) / 1000) < 2, `start ${start}`);
  const text = renderPrometheus(fams);
  assertOk(text.includes("# TYPE process_cpu_seconds_total counter"), text);
});
