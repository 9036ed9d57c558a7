"""A real HTTP server on 127.0.0.1, in a thread: what every stand-in of an outside service
(JWKS host, Pro Santé Connect, a subscriber's endpoint) runs on."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """Serves ``handler`` on a free loopback port once ``start()`` is called."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.02,),
                                        daemon=True)

    @property
    def root(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)
