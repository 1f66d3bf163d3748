import { assertEquals, assertIncludes, assertRejects } from "../../tests/_util/asserts.ts";
import { Logger } from "../log/logger.ts";
import { accessLog, AccessLogError, type AccessRecord } from "./access_log.ts";

const rec: AccessRecord = {
  direction: "outbound",
  via: "socks5",
  src: "127.0.0.1:5000",
  srcWorkload: "shop/web",
  srcIdentity: "spiffe://td/ns/shop/sa/web",
  dst: "10.0.0.2:8080",
  dstService: "db.shop.svc.cluster.local",
  bytesReceived: 12,
  bytesSent: 34,
  durationMs: 5,
  outcome: "ok",
  flag: "-",
};

Deno.test("access log: one line per record, text or JSON, to a file or with the logs", async () => {
  const dir = await Deno.makeTempDir();
  const logger = new Logger({ sink: () => {} });
  try {
    for (const format of ["text", "json"] as const) {
      const path = `${dir}/${format}.log`;
      const log = accessLog({ target: path, format, logger });
      log.write(rec);
      log.write({ ...rec, outcome: "refused", flag: "DENY", error: "denied by policy" });
      log.close();
      const lines = (await Deno.readTextFile(path)).trimEnd().split("\n");
      assertEquals(lines.length, 2);
      if (format === "json") {
        const j = JSON.parse(lines[1]);
        assertEquals([j.direction, j.outcome, j.flag, j.error], [
          "outbound",
          "refused",
          "DENY",
          "denied by policy",
        ]);
        assertEquals(j.bytes_sent, 34);
      } else {
        assertIncludes(lines[0], "direction=outbound via=socks5 src=127.0.0.1:5000");
        assertIncludes(lines[1], 'error="denied by policy"');
      }
    }
    const lines: string[] = [];
    const viaLogger = accessLog({
      logger: new Logger({ format: "json", sink: (l) => lines.push(l) }),
    });
    viaLogger.write(rec);
    assertEquals(JSON.parse(lines[0]).msg, "outbound connection closed");
    assertEquals(JSON.parse(lines[0]).component, "access");
    accessLog({ target: "off", logger }).write(rec);
    await assertRejects(
      () => accessLog({ target: `${dir}/missing/dir/a.log`, logger }),
      AccessLogError,
      "check that its directory exists",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
