"""The test servers' port helper: a free port below the kernel's ephemeral range, so that no
outgoing connection can take it between the draw and the server's bind."""

from __future__ import annotations

import itertools
import socket

import pytest

from tests import servers


def test_free_port_lies_below_the_ephemeral_range_and_binds() -> None:
    low, high = servers.ephemeral_ports()
    assert 1024 < low <= high
    ports = {servers.free_port() for _ in range(20)}
    if low > servers.LOWEST_PORT + 1000:  # room below the range (Linux's default: 32768)
        assert all(servers.LOWEST_PORT <= p < low for p in ports)
    else:  # the kernel's own pick
        assert all(low <= p <= high for p in ports)
    assert len(ports) > 1  # drawn at random, not one fixed port
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports.pop()))


def test_a_taken_port_is_never_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", servers.free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        # a range of one port, the taken one: every draw fails
        monkeypatch.setattr(servers, "LOWEST_PORT", port)
        monkeypatch.setattr(servers, "ephemeral_ports", lambda: (port + 1001, port + 2000))
        draws = itertools.chain([port] * 5, range(port + 1, port + 1000))
        monkeypatch.setattr(servers.random.SystemRandom, "randrange",
                            lambda self, a, b: next(draws))
        assert servers.free_port() > port


def test_without_room_below_the_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    low, high = servers.ephemeral_ports()
    monkeypatch.setattr(servers, "ephemeral_ports", lambda: (servers.LOWEST_PORT + 10, 65000))
    assert low <= servers.free_port() <= high  # bind(0): the kernel's own range
