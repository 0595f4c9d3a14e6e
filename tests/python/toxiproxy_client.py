"""Drive a Toxiproxy server with the published Python client (toxiproxy-python), as a user of
real Toxiproxy would. Usage: toxiproxy_client.py API_HOST API_PORT UPSTREAM_HOST:PORT
Exits non-zero with a message on the first mismatch; prints OK when everything held."""

import socket
import sys
import time

from toxiproxy import Toxiproxy
from toxiproxy.exceptions import NotFound, ProxyExists

TOXICS = [
    ("latency", {"latency": 300, "jitter": 10}),
    ("bandwidth", {"rate": 100}),
    ("slow_close", {"delay": 100}),
    ("timeout", {"timeout": 0}),
    ("reset_peer", {"timeout": 50}),
    ("slicer", {"average_size": 64, "size_variation": 8, "delay": 10}),
    ("limit_data", {"bytes": 1000}),
]


def check(cond, what):
    if not cond:
        print("FAIL: " + what, file=sys.stderr)
        sys.exit(1)


def echo_time(listen):
    host, port = listen.rsplit(":", 1)
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"ping")
        data = b""
        while len(data) < 4:
            chunk = sock.recv(4)
            if not chunk:
                break
            data += chunk
    check(data == b"ping", "echo through the proxy returned %r" % data)
    return time.monotonic() - start


def main():
    host, port, upstream = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    server = Toxiproxy()
    server.update_api_consumer(host, port)
    check(server.running(), "server not running")
    check(server.version(), "no version")

    proxy = server.create(upstream=upstream, name="py_echo", listen="127.0.0.1:0")
    check(not proxy.listen.endswith(":0"), "listen not resolved: " + proxy.listen)
    check("py_echo" in server.proxies(), "created proxy not listed")
    try:
        server.create(upstream=upstream, name="py_echo")
        check(False, "duplicate proxy accepted")
    except ProxyExists:
        pass

    for kind, attrs in TOXICS:
        for stream in ("upstream", "downstream"):
            proxy.add_toxic(type=kind, stream=stream, toxicity=0.5, attributes=attrs)
            name = "%s_%s" % (kind, stream)
            toxic = proxy.get_toxic(name)
            check(toxic is not None, name + " not listed after add")
            check(toxic.type == kind and toxic.stream == stream, name + " wrong type/stream")
            check(toxic.toxicity == 0.5, name + " toxicity %r" % toxic.toxicity)
            for key, value in attrs.items():
                check(toxic.attributes.get(key) == value, "%s.%s = %r" % (name, key, toxic.attributes.get(key)))
            proxy.destroy_toxic(name)
            check(proxy.get_toxic(name) is None, name + " still listed after remove")

    try:
        proxy.destroy_toxic("no_such_toxic")
        check(False, "removing a missing toxic succeeded")
    except NotFound:
        pass

    base = echo_time(proxy.listen)
    proxy.add_toxic(type="latency", attributes={"latency": 300})
    slow = echo_time(proxy.listen)
    check(slow >= 0.28, "latency toxic not in effect: %.3fs (base %.3fs)" % (slow, base))
    print("echo %.1f ms, with 300 ms latency %.1f ms" % (base * 1000, slow * 1000))

    proxy.disable()
    check(server.get_proxy("py_echo").enabled is False, "proxy still enabled after disable")
    try:
        echo_time(proxy.listen)
        check(False, "a disabled proxy accepted a connection")
    except OSError:
        pass
    proxy.enable()
    check(server.get_proxy("py_echo").enabled is True, "proxy not enabled after enable")

    proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 0})
    proxy.disable()
    check(server.reset(), "reset failed")
    again = server.get_proxy("py_echo")
    check(again.enabled is True, "reset did not re-enable the proxy")
    check(again.toxics() == {}, "reset left toxics: %r" % list(again.toxics()))
    check(echo_time(proxy.listen) < 0.25, "traffic still slow after reset")

    made = server.populate([{"name": "py_pop", "upstream": upstream, "listen": "127.0.0.1:0"}])
    check(len(made) == 1 and made[0].name == "py_pop", "populate returned %r" % made)
    server.destroy_all()
    check(server.proxies() == {}, "proxies left after destroy_all")
    print("OK")


if __name__ == "__main__":
    main()
