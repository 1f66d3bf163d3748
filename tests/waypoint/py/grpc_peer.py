"""gRPC peer for the waypoint tests (Debian's python3-grpcio, no generated code).

  grpc_peer.py serve HOST:PORT     echo service: /echo.Echo/Say (unary) and /echo.Echo/Chat
                                   (bidirectional streaming); prints "ready" when listening
  grpc_peer.py call HOST:PORT      calls both through HOST:PORT and prints one JSON line
"""
import json
import sys

import grpc
from concurrent import futures


def ident(b):
    return b


def serve(addr):
    def say(request, context):
        md = dict(context.invocation_metadata())
        context.set_trailing_metadata((("x-served-by", "py-grpc"),))
        return b"hello " + request + b" from " + md.get("x-forwarded-client-cert", "?").encode()

    def chat(request_iterator, context):
        for i, msg in enumerate(request_iterator):
            yield b"%d:%s" % (i, msg)

    handler = grpc.method_handlers_generic_handler("echo.Echo", {
        "Say": grpc.unary_unary_rpc_method_handler(say, ident, ident),
        "Chat": grpc.stream_stream_rpc_method_handler(chat, ident, ident),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(addr)
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def call(addr):
    out = {}
    with grpc.insecure_channel(addr) as ch:
        say = ch.unary_unary("/echo.Echo/Say", request_serializer=ident, response_deserializer=ident)
        resp, c = say.with_call(b"world", timeout=10)
        out["unary"] = resp.decode()
        out["trailers"] = dict(c.trailing_metadata())
        out["code"] = c.code().name
        chat = ch.stream_stream("/echo.Echo/Chat", request_serializer=ident, response_deserializer=ident)
        out["stream"] = [m.decode() for m in chat(iter([b"a", b"b", b"c"]), timeout=10)]
        missing = ch.unary_unary("/echo.Echo/Nope", request_serializer=ident, response_deserializer=ident)
        try:
            missing(b"x", timeout=10)
            out["missing"] = "OK"
        except grpc.RpcError as e:
            out["missing"] = e.code().name
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    {"serve": serve, "call": call}[sys.argv[1]](sys.argv[2])
