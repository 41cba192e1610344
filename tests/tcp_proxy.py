"""A TCP proxy a test can cut, to make a database or an API unreachable for real.

`cut()` resets every open connection and refuses new ones (as a crashed server or a broken
network would); `restore()` forwards again. `cut_when(pattern)` arms a cut that fires on the
first client chunk containing `pattern` (that chunk is never forwarded), which lets a test break
a connection in the middle of a transaction, e.g. on `INSERT INTO subscriptions`. `hold()` makes
it a black hole for new connections: accepted, never forwarded, never answered. `freeze()` makes
it a middlebox that moves nothing at all: open connections stay open and their bytes are held
(taken in, never passed on), new ones are held as by `hold()`; `thaw()` passes the held bytes on.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress


def _reset(sock: socket.socket) -> None:
    """End the connection now: shutdown wakes a thread blocked in recv() on it (a bare
    close() from another thread would not, and the peer would never hear of it), and the
    zero linger turns the close into a RST so the peer fails at once."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        sock.close()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server((host, 0))
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._up = True
        self._trigger: bytes | None = None
        self._held = False
        self._frozen = threading.Event()
        self.cuts = 0
        # What clients sent, one entry per chunk received: a client that writes each request
        # whole (Redis's, for one) sends one chunk per round trip.
        self.client_chunks: list[bytes] = []
        self._stopped = False
        threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True).start()

    # -- control ---------------------------------------------------------------------------

    def cut(self) -> None:
        with self._lock:
            self._up = False
            self._trigger = None
            self.cuts += 1
            doomed, self._open = self._open, set()
        for sock in doomed:
            _reset(sock)

    def restore(self) -> None:
        with self._lock:
            self._up = True

    def hold(self) -> None:
        with self._lock:
            self._held = True

    def freeze(self) -> None:
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def cut_when(self, pattern: bytes) -> None:
        with self._lock:
            self._trigger = pattern

    @property
    def is_up(self) -> bool:
        return self._up

    @contextmanager
    def down(self) -> Iterator[None]:
        self.cut()
        try:
            yield
        finally:
            self.restore()

    def stop(self) -> None:
        self._stopped = True
        self.cut()
        _reset(self._listener)

    # -- plumbing --------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up:
                _reset(client)
                continue
            if self._held or self._frozen.is_set():
                with self._lock:
                    self._open.add(client)  # open, silent; reset by cut() or stop()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_client:
                    self.client_chunks.append(data)
                if from_client and self._trigger is not None and self._trigger in data:
                    self.cut()
                    return
                while self._frozen.is_set() and self._up and not self._stopped:
                    time.sleep(0.01)  # frozen: taken in, not passed on
                if not self._up:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            _reset(source)
            _reset(sink)
