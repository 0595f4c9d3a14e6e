"""Drives pdchaos's embedded Toxiproxy server with the published Python client, unchanged.

Usage: python toxiproxy_client.py API_PORT UPSTREAM_HOST:PORT
Exits non-zero (with the failing check) if the server does not behave as Toxiproxy does.
"""
import socket
import sys
from contextlib import closing

from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists


def can_connect(listen):
    host, port = listen.rsplit(":", 1)
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def main():
    port, upstream = int(sys.argv[1]), sys.argv[2]
    APIConsumer.host, APIConsumer.port = "127.0.0.1", port
    t = Toxiproxy()
    assert t.version(), "version"
    proxy = t.create(upstream=upstream, name="py-proxy")
    assert proxy.listen.endswith(":0") is False, f"port 0 resolved: {proxy.listen}"
    assert can_connect(proxy.listen), "proxy listens"
    try:
        t.create(upstream=upstream, name="py-proxy")
        raise AssertionError("duplicate proxy accepted")
    except ProxyExists:
        pass
    toxics = [
        ("latency", {"latency": 100, "jitter": 10}),
        ("bandwidth", {"rate": 100}),
        ("slow_close", {"delay": 100}),
        ("timeout", {"timeout": 0}),
        ("slicer", {"average_size": 10, "size_variation": 2, "delay": 100}),
        ("limit_data", {"bytes": 1000}),
    ]
    for kind, attrs in toxics:
        proxy.add_toxic(type=kind, attributes=attrs)
        name = f"{kind}_downstream"
        got = proxy.get_toxic(name)
        assert got is not None and got.type == kind, f"{kind} listed"
        assert got.attributes == attrs, f"{kind} attributes {got.attributes}"
    proxy.add_toxic(type="latency", stream="upstream", name="up", toxicity=0.5, attributes={"latency": 5})
    assert proxy.get_toxic("up").stream == "upstream"
    assert len(proxy.toxics()) == len(toxics) + 1
    for kind, _ in toxics:
        assert proxy.destroy_toxic(f"{kind}_downstream")
    assert set(proxy.toxics()) == {"up"}, proxy.toxics()
    try:
        proxy.add_toxic(type="reset_peer", attributes={"timeout": 0})
        raise AssertionError("reset_peer should be refused by the embedded engine")
    except InvalidToxic:
        pass
    proxy.disable()
    assert not t.get_proxy("py-proxy").enabled, "disabled reads back"
    assert not can_connect(proxy.listen), "disabled proxy refuses connections"
    proxy.enable()
    assert can_connect(proxy.listen), "enabled again"
    proxy.disable()
    assert t.reset()
    after = t.get_proxy("py-proxy")
    assert after.enabled, "reset re-enables"
    assert after.toxics() == {}, "reset clears toxics in both directions"
    assert t.destroy(after)
    try:
        t.get_proxy("py-proxy").toxics()
        raise AssertionError("deleted proxy still there")
    except (NotFound, AttributeError):
        pass
    print("python toxiproxy client: all checks passed")


if __name__ == "__main__":
    main()
