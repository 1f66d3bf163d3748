"""client: calls mesh services by name, in a loop, and prints what it got.

Each round GETs every URL in TARGETS and prints one JSON line per request:
url, HTTP status, the app and version that answered, the caller identity
that app saw and the proxy that vouched for it (or the refusal). Requests go through the ztunnel's HTTP proxy
when http_proxy is set (urllib honours it), which resolves mesh names such as
hello.demo.svc.cluster.local.

Environment: TARGETS (space-separated URLs), INTERVAL_SECONDS (between
rounds, default 2), COUNT (rounds, 0 = forever, default 0), REQUEST_HEADERS
(extra headers, "name: value" separated by ";"), http_proxy.
"""

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

TARGETS = os.environ.get("TARGETS", "http://hello.demo.svc.cluster.local:8080/").split()
INTERVAL = float(os.environ.get("INTERVAL_SECONDS", "2"))
COUNT = int(os.environ.get("COUNT", "0"))
HEADERS = dict(
    (k.strip(), v.strip())
    for k, _, v in (h.partition(":") for h in os.environ.get("REQUEST_HEADERS", "").split(";"))
    if k.strip()
)


def call(url):
    """One request; returns what to print."""
    out = {"url": url}
    request = urllib.request.Request(url, headers=HEADERS)
    try:
        with urllib.request.urlopen(request, timeout=10) as res:
            out["status"] = res.status
            body = res.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        out["status"] = e.code
        body = e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:
        out["error"] = str(getattr(e, "reason", e))
        return out
    try:
        answer = json.loads(body)
        out.update({k: answer.get(k) for k in ("app", "version", "caller", "via")})
    except ValueError:
        out["body"] = body.strip()[:200]
    return out


class Stop:
    """SIGTERM ends the loop, but never in the middle of a request: every
    request made is printed (what the lab's test counts on)."""

    requested = False
    busy = False

    @classmethod
    def on_signal(cls, *_):
        cls.requested = True
        if not cls.busy:
            sys.exit(0)


def main():
    signal.signal(signal.SIGTERM, Stop.on_signal)
    round_ = 0
    while COUNT == 0 or round_ < COUNT:
        round_ += 1
        for url in TARGETS:
            Stop.busy = True
            print(json.dumps(call(url)), flush=True)
            Stop.busy = False
            if Stop.requested:
                return
        if COUNT == 0 or round_ < COUNT:
            time.sleep(INTERVAL)


if __name__ == "__main__":
    main()
