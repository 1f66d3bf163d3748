"""An HBONE client on Python's ssl and the h2 library (sans-I/O HTTP/2).

Reads a JSON spec on stdin ({"addr", "cert", "key", "ca", "sni"?, "cases": [
{"name", "authority", "send"?, "bytes"?, "prefix"?, "holdMs"?}]}), opens one mutual-TLS
1.3 connection with ALPN h2 and runs each case as one CONNECT stream: when
the answer is 200 it sends the payload, ends its side (half-close) and reads
until the server ends the stream. Prints one JSON line per case, then a
summary line.
"""

import hashlib
import json
import random
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events


class Client:
    def __init__(self, spec):
        host, port = spec["addr"].rsplit(":", 1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        # Names are not checked, identities are: the chain is, against the bundle.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(spec["ca"])
        ctx.load_cert_chain(spec["cert"], spec["key"])
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection((host.strip("[]"), int(port)), timeout=15)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(raw, server_hostname=spec.get("sni") or None)
        cert = self.sock.getpeercert() or {}
        self.tls = {
            "tlsVersion": self.sock.version(),
            "alpn": self.sock.selected_alpn_protocol(),
            "cipher": self.sock.cipher()[0],
            "peer": [v for k, v in cert.get("subjectAltName", ()) if k == "URI"],
        }
        # h2 4.1 insists on :scheme and :path in every request it sends, which
        # RFC 9113 8.5 forbids for CONNECT; its outbound check is turned off for that.
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True, header_encoding="utf-8", validate_outbound_headers=False
            )
        )
        self.conn.initiate_connection()
        self.flush()
        self.streams = {}

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self):
        """Reads once from the socket and dispatches the events."""
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("server closed the connection")
        for ev in self.conn.receive_data(data):
            st = self.streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived) and st is not None:
                st["status"] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived) and st is not None:
                st["data"].append(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and st is not None:
                st["ended"] = True
            elif isinstance(ev, h2.events.StreamReset) and st is not None:
                st["reset"] = ev.error_code
                st["ended"] = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                raise ConnectionError(f"GOAWAY {ev.error_code}")
        self.flush()

    def send_all(self, sid, payload, st):
        """Sends payload within the flow-control windows, then END_STREAM."""
        view = memoryview(payload)
        while view and not st["ended"]:
            n = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if n <= 0:
                self.pump()
                continue
            self.conn.send_data(sid, bytes(view[:n]))
            view = view[n:]
            self.flush()
        if not st["ended"]:
            self.conn.end_stream(sid)
            self.flush()

    def run(self, case):
        sid = self.conn.get_next_available_stream_id()
        st = self.streams[sid] = {"status": None, "data": [], "ended": False}
        self.conn.send_headers(
            sid, [(":method", "CONNECT"), (":authority", case["authority"])], end_stream=False
        )
        self.flush()
        while st["status"] is None and not st["ended"]:
            self.pump()
        out = {"name": case["name"], "status": st["status"], **self.tls}
        rs = self.conn.remote_settings
        out["settings"] = {
            "maxConcurrentStreams": rs.max_concurrent_streams,
            "initialWindowSize": rs.initial_window_size,
            "maxFrameSize": rs.max_frame_size,
            # What the server lets us send on the whole connection, so far.
            "connectionWindow": self.conn.outbound_flow_control_window,
        }
        if st["status"] == 200 and case.get("holdMs"):
            # Deaf on purpose: nothing is read, so the server's PINGs go unanswered.
            time.sleep(case["holdMs"] / 1000)
        if st["status"] == 200:
            if "bytes" in case:
                payload = random.Random(case["bytes"]).randbytes(case["bytes"])
            else:
                payload = case.get("send", "").encode()
            out["sent"] = len(payload)
            out["sentSha"] = hashlib.sha256(payload).hexdigest()
            self.send_all(sid, payload, st)
        elif not st["ended"]:
            self.conn.end_stream(sid)
            self.flush()
        while not st["ended"]:
            self.pump()
        body = b"".join(st["data"])
        if "reset" in st:
            out["reset"] = st["reset"]
        prefix = case.get("prefix", "").encode()
        if st["status"] == 200 and "bytes" in case:
            out["prefixOk"] = body.startswith(prefix)
            out["recv"] = len(body) - len(prefix)
            out["recvSha"] = hashlib.sha256(body[len(prefix):]).hexdigest()
        else:
            out["body"] = body.decode("utf-8", "replace")
        del self.streams[sid]
        return out


def main():
    spec = json.load(sys.stdin)
    client = Client(spec)
    for case in spec["cases"]:
        try:
            print(json.dumps(client.run(case)), flush=True)
        except Exception as e:  # report and go on: one line per case
            print(json.dumps({"name": case["name"], "error": repr(e)}), flush=True)
    try:
        client.conn.close_connection()
        client.flush()
    except OSError:
        pass  # the server may have dropped us already (reported above)
    client.sock.close()
    print(json.dumps({"name": "summary"}), flush=True)


if __name__ == "__main__":
    main()
