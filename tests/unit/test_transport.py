"""transport.py's sessions on real sockets: the deadline guard, kept-alive connections, proxies."""

from __future__ import annotations

import logging
import socket
import threading
import time
from contextlib import suppress

import pytest
import requests

from airflow_provider_infinityblue.network import NetworkSettings
from airflow_provider_infinityblue.transport import (
    DeadlineGuard,
    enforce_deadline,
    new_session,
    request_timeouts,
)
from tests.loopback import LoopbackServer, Reply

SLOW = Reply(body={"padding": "x" * 400}, action="trickle", delay=0.05, trickle_headers=True)
OK = Reply(body={"ok": True})

DIRECT = NetworkSettings()  # no proxy, the default certificates: the sessions below are given their proxies


def get(session: requests.Session, url: str, *, within: float, **kwargs) -> tuple[DeadlineGuard, requests.Response]:
    at = time.monotonic() + within
    with enforce_deadline(at=at) as guard:
        response = session.get(url, timeout=request_timeouts(at=at, connect_timeout=1, read_timeout=10), **kwargs)
    return guard, response


def test_an_answer_in_time_leaves_the_connection_kept_alive() -> None:
    with LoopbackServer([OK, OK]) as server, new_session(DIRECT) as session:
        guards = [get(session, f"{server.url}/a", within=5)[0] for _ in range(2)]
    assert [guard.expired for guard in guards] == [False, False]
    assert server.connections == 1


def test_a_trickling_answer_is_cut_at_the_deadline_and_its_connection_dropped() -> None:
    with LoopbackServer([SLOW, OK]) as server, new_session(DIRECT) as session:
        started = time.monotonic()
        with pytest.raises(requests.ConnectionError), enforce_deadline(at=started + 0.5) as guard:
            session.get(f"{server.url}/a", timeout=(1, 10))
        elapsed = time.monotonic() - started
        assert guard.expired
        assert 0.5 <= elapsed < 1.5
        assert get(session, f"{server.url}/b", within=5)[1].json() == {"ok": True}
    assert server.connections == 2


def test_through_an_http_proxy_too() -> None:
    # The loopback server stands in for a forward proxy: it gets the absolute URL, and trickles.
    with LoopbackServer([SLOW]) as proxy, new_session(DIRECT) as session:
        started = time.monotonic()
        with pytest.raises(requests.ConnectionError), enforce_deadline(at=started + 0.5) as guard:
            session.get("http://video.example.test/status", proxies={"http": proxy.url}, timeout=(1, 10))
        elapsed = time.monotonic() - started
    assert guard.expired
    assert 0.5 <= elapsed < 1.5
    assert proxy.received[0].path == "http://video.example.test/status"


def test_a_guard_on_another_thread_leaves_this_one_alone() -> None:
    entered, done = threading.Event(), threading.Event()

    def hold_a_guard_that_expires_soon() -> None:
        with enforce_deadline(at=time.monotonic() + 0.2):
            entered.set()
            done.wait(5)

    other = threading.Thread(target=hold_a_guard_that_expires_soon)
    with (
        LoopbackServer([Reply(body={"ok": True}, action="stall", delay=0.6)]) as server,
        new_session(DIRECT) as session,
    ):
        other.start()
        entered.wait(5)
        try:
            response = session.get(f"{server.url}/a", timeout=(1, 10))
        finally:
            done.set()
            other.join()
    assert response.json() == {"ok": True}


class _Connection:
    """Just what the guard touches on a urllib3 connection: its socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock


def test_a_connection_registering_after_the_deadline_is_shut_at_once() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs, enforce_deadline(at=time.monotonic()) as guard:
        deadline_passed = time.monotonic() + 5
        while not guard.expired and time.monotonic() < deadline_passed:
            time.sleep(0.01)
        guard.register(_Connection(ours))
        ours.settimeout(1)
        assert ours.recv(1) == b""  # shut down, not a timeout


def test_a_released_guard_touches_nothing() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        with enforce_deadline(at=time.monotonic() + 0.2) as guard:
            guard.register(_Connection(ours))
        time.sleep(0.4)
        theirs.sendall(b"x")
        ours.settimeout(1)
        assert ours.recv(1) == b"x"
        assert not guard.expired


def test_headers_cut_by_the_deadline_leave_no_url_in_the_log(caplog) -> None:
    # One byte every 50 ms: at 1 s the cut falls inside the Content-Type line, which urllib3 would report
    # as a malformed header, quoting the URL and its query string.
    slow_headers = Reply(body={"ok": True}, action="trickle", delay=0.05, trickle_headers=True)
    caplog.set_level(logging.WARNING)
    with (
        LoopbackServer([slow_headers]) as server,
        new_session(DIRECT) as session,
        # Cut headers may still parse into a (truncated) answer: only the guard tells.
        suppress(requests.ConnectionError),
        enforce_deadline(at=time.monotonic() + 1) as guard,
    ):
        session.get(f"{server.url}/v.mp4?X-Amz-Signature=SIGNATUREnotforlogs", timeout=(1, 10))
    assert guard.expired
    assert "SIGNATUREnotforlogs" not in caplog.text
