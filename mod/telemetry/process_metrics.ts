/**
 * The process's own resources as Prometheus families, read at scrape time:
 * the standard `process_*` names (resident memory, CPU seconds, start time)
 * and the V8 heap, so an SRE can watch a node's memory and tell heap growth
 * from other memory (see ARCHITECTURE.md, "Allocation and GC").
 *
 * @module
 */
import process from "node:process";
import type { Family } from "./prometheus.ts";

/** Start of this process, seconds since the epoch. */
const START_SECONDS = Math.round(performance.timeOrigin) / 1000;

/** Families for the running process. One `Deno.memoryUsage()` call serves a scrape's memory families. */
export function processFamilies(): Family[] {
  let memory: Deno.MemoryUsage | undefined;
  let readAt = -1;
  // The four memory families of one scrape read one snapshot.
  const mem = () => {
    const now = performance.now();
    if (memory === undefined || now - readAt > 100) {
      memory = Deno.memoryUsage();
      readAt = now;
    }
    return memory;
  };
  return [
    {
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      type: "gauge",
      samples: () => [{ value: mem().rss }],
    },
    {
      name: "process_cpu_seconds_total",
      help: "Total user and system CPU time spent in seconds.",
      type: "counter",
      samples: () => {
        const u = process.cpuUsage();
        return [{ value: (u.user + u.system) / 1e6 }];
      },
    },
    {
      name: "process_start_time_seconds",
      help: "Start time of the process since unix epoch in seconds.",
      type: "gauge",
      samples: () => [{ value: START_SECONDS }],
    },
    {
      name: "ambit_v8_heap_used_bytes",
      help: "V8 heap in use (live objects and garbage not yet collected).",
      type: "gauge",
      samples: () => [{ value: mem().heapUsed }],
    },
    {
      name: "ambit_v8_heap_total_bytes",
      help: "V8 heap reserved.",
      type: "gauge",
      samples: () => [{ value: mem().heapTotal }],
    },
    {
      name: "ambit_v8_external_bytes",
      help: "Memory outside the V8 heap held by JavaScript objects (buffers).",
      type: "gauge",
      samples: () => [{ value: mem().external }],
    },
  ];
}
