/**
 * The fixed-rate request/response latency client of the data-plane
 * benchmark, in Python: Deno's timers fire about a millisecond late
 * (setTimeout(1) takes ~2.2 ms here), which is the size of the effect being
 * measured. select() waits with microsecond timeouts, perf_counter() is the
 * monotonic clock.
 *
 * Requests of SIZE bytes are sent on one fixed schedule (request i at
 * t0 + i/RATE). The schedule is cut into SLICE-second slices that take the
 * TARGETS in turn (direct, stunnel, ambit, direct, ...), so each path is
 * measured in many short slices spread over the whole run: a burst of other
 * load on the machine (a noisy neighbour of the VM, say) lands on every path
 * alike instead of on whichever path happened to run during it. Within a
 * slice requests go round-robin over that target's CONNS persistent
 * connections (pipelined when an answer is late). Each latency runs from the
 * *scheduled* send time to the arrival of the last byte of its echo, so a
 * stall counts against every request it delays (no coordinated omission).
 * Requests scheduled in the first WARMUP seconds are sent but not counted.
 * Prints one JSON line: an object per target, in the order given.
 *
 *   python3 latency.py RATE SECONDS CONNS SIZE WARMUP SLICE HOST:PORT [HOST:PORT ...]
 *
 * SECONDS is the measured time per target (the run takes WARMUP + SECONDS x
 * the number of targets).
 *
 * @module
 */
export const LATENCY_CLIENT_PY = String.raw`
import collections, json, select, socket, sys, time


def pct(s, q):
    return round(s[min(len(s) - 1, int(len(s) * q))] * 1000, 3) if s else None


def main():
    rate, seconds = float(sys.argv[1]), float(sys.argv[2])
    conns, size, warmup = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    slice_s = float(sys.argv[6])
    targets = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in sys.argv[7:]]
    paths = len(targets)
    socks = []
    for host, port in targets:
        for _ in range(conns):
            s = socket.create_connection((host, port), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            socks.append(s)
    index = {s.fileno(): i for i, s in enumerate(socks)}
    payload = b"q" * size
    interval = 1.0 / rate
    per_slice = max(1, int(round(rate * slice_s)))
    total = int(rate * (warmup + seconds * paths))
    pending = [collections.deque() for _ in socks]
    out = [bytearray() for _ in socks]
    got = [0] * len(socks)
    lat = [[] for _ in targets]
    svc = [[] for _ in targets]
    lag = [[] for _ in targets]
    done_by = [0] * paths
    sent_by = [0] * paths
    perf = time.perf_counter
    t0 = perf() + 0.01
    measure_from = t0 + warmup
    deadline = t0 + warmup + seconds * paths + 5.0
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
            p = (sent // per_slice) % paths
            c = p * conns + sent % conns
            pending[c].append((due, now))
            out[c] += payload
            if due >= measure_from:
                lag[p].append(now - due)
            sent_by[p] += 1
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
            p = c // conns
            try:
                data = s.recv(1 << 18)
            except BlockingIOError:
                continue
            except OSError as e:
                error = "%s:%d: %s" % (targets[p][0], targets[p][1], e)
                break
            t = perf()
            if not data:
                error = "%s:%d: connection closed by the peer" % targets[p]
                break
            n = len(data)
            while n > 0:
                take = min(size - got[c], n)
                got[c] += take
                n -= take
                if got[c] == size:
                    got[c] = 0
                    if not pending[c]:
                        error = "%s:%d: more bytes came back than were sent" % targets[p]
                        break
                    due, at = pending[c].popleft()
                    if due >= measure_from:
                        lat[p].append(t - due)
                        svc[p].append(t - at)
                    done += 1
                    done_by[p] += 1
    for s in socks:
        s.close()
    results = []
    for p in range(paths):
        lat[p].sort()
        svc[p].sort()
        lag[p].sort()
        results.append({
            "requests": done_by[p],
            "expected": sent_by[p],
            "measured": len(lat[p]),
            "p50Ms": pct(lat[p], 0.5),
            "p90Ms": pct(lat[p], 0.9),
            "p99Ms": pct(lat[p], 0.99),
            "p999Ms": pct(lat[p], 0.999),
            "maxMs": round(lat[p][-1] * 1000, 3) if lat[p] else None,
            "serviceP50Ms": pct(svc[p], 0.5),
            "serviceP99Ms": pct(svc[p], 0.99),
            "sendLagP99Ms": pct(lag[p], 0.99),
        })
    print(json.dumps({"targets": results, "error": error}))


main()
`;
