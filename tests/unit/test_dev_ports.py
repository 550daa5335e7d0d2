"""The ports of `orderstatus dev`: a quick restart keeps them, a busy one falls back and is announced."""

from __future__ import annotations

import socket

from service.entrypoints.dev import DevPorts


def _time_wait_port() -> int:
    """A port whose listener is closed and whose server side of a connection is in TIME_WAIT (the server closed
    first), as a stopped Postgres leaves its port for a minute."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as PostgreSQL, tansu and aiohttp do
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    server, _ = listener.accept()
    server.close()  # the active close: this side goes to TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()
    return port


class TestDevPorts:
    def test_a_port_in_time_wait_is_taken_again(self, tmp_path):
        """A port left in TIME_WAIT by a run stopped a moment ago is the one the next run uses."""
        port = _time_wait_port()
        with socket.socket() as probe:  # the negative control: a bind without SO_REUSEADDR sees it busy
            try:
                probe.bind(("127.0.0.1", port))
                in_time_wait = False
            except OSError:
                in_time_wait = True
        assert in_time_wait, "the set-up did not leave the port in TIME_WAIT"
        ports = DevPorts(tmp_path)
        assert ports.take("PostgreSQL", port) == port
        assert ports.fallbacks() == []

    def test_a_busy_port_falls_back_is_announced_and_kept_for_the_next_run(self, tmp_path):
        """A port someone listens on gives a free one, named in the banner's line and remembered in the data
        directory, so the next run (its listener gone by then) comes back to the same address."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            usual = busy.getsockname()[1]
            ports = DevPorts(tmp_path)
            chosen = ports.take("PostgreSQL", usual)
            assert chosen != usual
            assert ports.fallbacks() == [f"PostgreSQL on {chosen} ({usual} was busy)"]
        assert DevPorts(tmp_path).take("PostgreSQL", usual) == chosen
