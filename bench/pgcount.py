"""A TCP proxy in front of PostgreSQL that counts what clients send (bench/helpers.py's
FrontendParser): statements and round trips, whatever library or ORM sent them."""

from __future__ import annotations

import socket
import threading
from contextlib import suppress

from bench.helpers import FrontendParser, WireCounts


class CountingProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._parsers: list[FrontendParser] = []
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def snapshot(self) -> WireCounts:
        total = WireCounts()
        with self._lock:
            for parser in self._parsers:
                total.add(parser.counts)
        return WireCounts(total.statements, total.round_trips, list(total.queries))

    def close(self) -> None:
        with suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            parser = FrontendParser()
            with self._lock:
                self._parsers.append(parser)
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, parser), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, parser: FrontendParser | None) -> None:
        try:
            while data := src.recv(65536):
                if parser is not None:
                    with self._lock:
                        parser.feed(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
