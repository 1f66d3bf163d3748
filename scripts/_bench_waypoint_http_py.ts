/**
 * The fixed-rate HTTP/1.1 latency client of the waypoint benchmark, in Python
 * (as `_bench_latency_py.ts` for TCP: Deno's timers fire about a millisecond
 * late, select() waits with microsecond timeouts, perf_counter() is the
 * monotonic clock). Raw sockets, no HTTP library in the way.
 *
 * `GET PATH` requests are scheduled at a fixed rate (request i at t0 + i/RATE,
 * round-robin over CONNS keep-alive connections). Each connection has at most
 * one request in flight (no pipelining, as real HTTP/1.1 clients): a request
 * whose connection is still busy waits and is sent the moment the previous
 * answer is complete. Latency runs from the *scheduled* time to the last byte
 * of the answer, so a slow answer counts against every request it delays (no
 * coordinated omission). Answers are read by `content-length` or chunked
 * framing; anything but `200` with exactly SIZE body bytes is an error (its
 * status line and the start of its body are reported). A `connection: close`
 * or a closed connection is counted and the connection reopened.
 *
 * A path slower than the rate falls ever further behind; 10 s after the last
 * scheduled time the client stops waiting, and each request still unanswered
 * counts with the latency it has reached by then (a lower bound), as
 * `unanswered`.
 *
 * Requests scheduled in the first WARMUP seconds are sent but not counted.
 * Prints `{"phase": "measuring"}` when the measured part starts (the
 * benchmark samples the proxies' CPU time then) and one JSON result line at
 * the end. Its `slow` list holds `[scheduled s since start, service ms]` of
 * up to 100 answers that took over 5 ms (to line stalls up with the proxies'
 * GC or scheduling traces).
 *
 *   python3 client.py HOST PORT PATH RATE SECONDS CONNS SIZE WARMUP
 *
 * @module
 */
export const HTTP_LATENCY_CLIENT_PY = String.raw`
import collections, json, select, socket, sys, time


def pct(s, q):
    return round(s[min(len(s) - 1, int(len(s) * q))] * 1000, 3) if s else None


def parse(buf):
    """One complete response at the start of buf: (status, body_len, close, used, snippet) or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 65536:
            raise ValueError("response header block over 64 KiB")
        return None
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError("not an HTTP/1.x status line: %r" % lines[0][:200])
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    close = "close" in headers.get("connection", "").lower()
    pos = end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, start = 0, pos
        while True:
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                return None
            n = int(bytes(buf[pos:nl]).split(b";")[0].strip(), 16)
            if n == 0:
                t = buf.find(b"\r\n\r\n", nl)
                if t < 0:
                    return None
                return status, body, close, t + 4, bytes(buf[start:start + 200])
            if len(buf) < nl + 2 + n + 2:
                return None
            body += n
            pos = nl + 2 + n + 2
    if "content-length" in headers:
        n = int(headers["content-length"])
        if len(buf) < pos + n:
            return None
        return status, n, close, pos + n, bytes(buf[pos:pos + min(n, 200)])
    if status in (204, 304) or status < 200:
        return status, 0, close, pos, b""
    raise ValueError("HTTP %d without content-length or chunked framing" % status)


def main():
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rate, seconds = float(sys.argv[4]), float(sys.argv[5])
    nconns, size, warmup = int(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8])
    request = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: ambit-bench\r\n\r\n"
               % (path, host, port)).encode()

    def connect():
        s = socket.create_connection((host, port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        return s

    conns = [{"sock": connect(), "out": bytearray(), "in": bytearray(),
              "queue": collections.deque(), "inflight": None} for _ in range(nconns)]
    interval = 1.0 / rate
    total = int(rate * (warmup + seconds))
    lat, svc, lag = [], [], []
    slow = []  # [scheduled s since start, service ms] of answers over 5 ms
    statuses = collections.Counter()
    errors = reconnects = 0
    first_error = None
    perf = time.perf_counter
    t0 = perf() + 0.01
    measure_from = t0 + warmup
    deadline = t0 + warmup + seconds + 10.0
    sent = done = unanswered = 0
    announced = False
    fatal = None

    def reopen(c, why):
        nonlocal reconnects, errors, done, first_error
        reconnects += 1
        if c["inflight"] is not None:
            errors += 1
            done += 1
            first_error = first_error or why
            c["inflight"] = None
        c["sock"].close()
        c["sock"], c["out"], c["in"] = connect(), bytearray(), bytearray()

    while done < total and fatal is None:
        now = perf()
        if now > deadline:
            # Fell behind: what is still unanswered counts with its latency so far.
            for c in conns:
                waiting = ([c["inflight"][0]] if c["inflight"] else []) + list(c["queue"])
                for due in waiting:
                    if due >= measure_from:
                        lat.append(now - due)
                        unanswered += 1
            break
        if not announced and now >= measure_from:
            print(json.dumps({"phase": "measuring"}), flush=True)
            announced = True
        while sent < total and t0 + sent * interval <= now:
            conns[sent % nconns]["queue"].append(t0 + sent * interval)
            sent += 1
        writers = []
        for c in conns:
            if c["inflight"] is None and c["queue"]:
                due, at = c["queue"].popleft(), perf()
                c["inflight"] = (due, at)
                c["out"] += request
                if due >= measure_from:
                    lag.append(at - due)
            if c["out"]:
                try:
                    del c["out"][: c["sock"].send(c["out"])]
                except BlockingIOError:
                    pass
                if c["out"]:
                    writers.append(c["sock"])
        timeout = max(0.0, t0 + sent * interval - perf()) if sent < total else 0.05
        readable, _, _ = select.select([c["sock"] for c in conns], writers, [], timeout)
        for s in readable:
            c = next(c for c in conns if c["sock"] is s)
            try:
                data = s.recv(1 << 18)
            except BlockingIOError:
                continue
            except OSError as e:
                reopen(c, "recv: %s" % e)
                continue
            t = perf()
            if not data:
                reopen(c, "connection closed by the server with a request in flight")
                continue
            c["in"] += data
            while True:
                try:
                    r = parse(c["in"])
                except ValueError as e:
                    fatal = str(e)
                    break
                if r is None:
                    break
                status, body, close, used, snippet = r
                del c["in"][:used]
                if c["inflight"] is None:
                    fatal = "an answer came without a request (HTTP %d)" % status
                    break
                due, at = c["inflight"]
                c["inflight"] = None
                done += 1
                statuses[status] += 1
                if status == 200 and body == size:
                    if due >= measure_from:
                        lat.append(t - due)
                        svc.append(t - at)
                        if t - at > 0.005 and len(slow) < 100:
                            slow.append([round(due - t0, 3), round((t - at) * 1000, 2)])
                else:
                    errors += 1
                    first_error = first_error or "HTTP %d, %d body bytes: %r" % (
                        status, body, snippet[:200].decode("latin-1"))
                if close:
                    reopen(c, "connection: close")
                    break
            if fatal:
                break
    for c in conns:
        c["sock"].close()
    lat.sort()
    svc.sort()
    lag.sort()
    print(json.dumps({
        "requests": done,
        "expected": total,
        "measured": len(lat) - unanswered,
        "unanswered": unanswered,
        "p50Ms": pct(lat, 0.5),
        "p90Ms": pct(lat, 0.9),
        "p99Ms": pct(lat, 0.99),
        "p999Ms": pct(lat, 0.999),
        "maxMs": round(lat[-1] * 1000, 3) if lat else None,
        "serviceP50Ms": pct(svc, 0.5),
        "serviceP99Ms": pct(svc, 0.99),
        "sendLagP99Ms": pct(lag, 0.99),
        "slow": slow,
        "errors": errors,
        "statuses": {str(k): v for k, v in statuses.items()},
        "firstError": first_error,
        "reconnects": reconnects,
        "error": fatal,
    }), flush=True)


main()
`;
