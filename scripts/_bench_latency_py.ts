/**
 * The fixed-rate request/response latency client of the data-plane
 * benchmark, in Python: Deno's timers fire about a millisecond late
 * (setTimeout(1) takes ~2.2 ms here), which is the size of the effect being
 * measured. select() waits with microsecond timeouts, perf_counter() is the
 * monotonic clock.
 *
 * Requests of SIZE bytes are sent on a fixed schedule (request i at
 * t0 + i/RATE, round-robin over CONNS persistent connections, pipelined when
 * an answer is late), and each latency runs from the *scheduled* send time to
 * the arrival of the last byte of its echo, so a stall counts against every
 * request it delays (no coordinated omission). Requests scheduled in the
 * first WARMUP seconds are sent but not counted. Prints one JSON line.
 *
 *   python3 latency.py HOST PORT RATE SECONDS CONNS SIZE WARMUP
 *
 * @module
 */
export const LATENCY_CLIENT_PY = String.raw`
import collections, json, select, socket, sys, time


def pct(s, q):
    return round(s[min(len(s) - 1, int(len(s) * q))] * 1000, 3) if s else None


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    rate, seconds = float(sys.argv[3]), float(sys.argv[4])
    conns, size, warmup = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
    socks = []
    for _ in range(conns):
        s = socket.create_connection((host, port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
    index = {s.fileno(): i for i, s in enumerate(socks)}
    payload = b"q" * size
    interval = 1.0 / rate
    total = int(rate * (warmup + seconds))
    pending = [collections.deque() for _ in socks]
    out = [bytearray() for _ in socks]
    got = [0] * conns
    lat, svc, lag = [], [], []
    perf = time.perf_counter
    t0 = perf() + 0.01
    measure_from = t0 + warmup
    deadline = t0 + warmup + seconds + 5.0
    sent = done = 0
    error = None
    while done < total and error is None:
        now = perf()
        if now > deadline:
            error = "timed out waiting for %d answers" % (total - done)
            break
        while sent < total:
            due = t0 + sent * interval
            if due > now:
                break
            c = sent % conns
            pending[c].append((due, now))
            out[c] += payload
            if due >= measure_from:
                lag.append(now - due)
            sent += 1
        writers = []
        for c, s in enumerate(socks):
            if out[c]:
                try:
                    del out[c][: s.send(out[c])]
                except BlockingIOError:
                    pass
                if out[c]:
                    writers.append(s)
        timeout = max(0.0, t0 + sent * interval - perf()) if sent < total else 0.05
        readable, _, _ = select.select(socks, writers, [], timeout)
        for s in readable:
            c = index[s.fileno()]
            try:
                data = s.recv(1 << 18)
            except BlockingIOError:
                continue
            except OSError as e:
                error = str(e)
                break
            t = perf()
            if not data:
                error = "connection closed by the peer"
                break
            n = len(data)
            while n > 0:
                take = min(size - got[c], n)
                got[c] += take
                n -= take
                if got[c] == size:
                    got[c] = 0
                    if not pending[c]:
                        error = "more bytes came back than were sent"
                        break
                    due, at = pending[c].popleft()
                    if due >= measure_from:
                        lat.append(t - due)
                        svc.append(t - at)
                    done += 1
    for s in socks:
        s.close()
    lat.sort()
    svc.sort()
    lag.sort()
    print(json.dumps({
        "requests": done,
        "expected": total,
        "measured": len(lat),
        "p50Ms": pct(lat, 0.5),
        "p90Ms": pct(lat, 0.9),
        "p99Ms": pct(lat, 0.99),
        "p999Ms": pct(lat, 0.999),
        "maxMs": round(lat[-1] * 1000, 3) if lat else None,
        "serviceP50Ms": pct(svc, 0.5),
        "serviceP99Ms": pct(svc, 0.99),
        "sendLagP99Ms": pct(lag, 0.99),
        "error": error,
    }))


main()
`;
