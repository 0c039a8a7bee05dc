"""A local HTTP server for the URL-input tests: serves a real sample video, and the bad servers the SSRF and
limit tests need (a redirect to a private address, an endless body, a one-byte-a-second trickle, a throttled
copy of each file under ``/throttled/``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class MediaServer:
    """``url(path)`` for this server; ``sent[path]``: the body bytes it sent on that path (all requests);
    ``headers[path]``: the request headers of the last request for it."""

    host: str
    port: int
    files: dict[str, Path]
    sent: dict[str, int] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"


def _handler(server: MediaServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _count(self, n: int) -> None:
            server.sent[self.path] = server.sent.get(self.path, 0) + n

        def do_HEAD(self) -> None:
            self.do_GET(head=True)

        def do_GET(self, head: bool = False) -> None:
            server.headers[self.path] = {k.lower(): v for k, v in self.headers.items()}
            path = self.path.split("?", 1)[0]
            if path in server.files:
                data = server.files[path].read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)
                    self._count(len(data))
            elif path.startswith("/throttled/") and path[len("/throttled") :] in server.files:  # ~1.3 MB/s
                data = server.files[path[len("/throttled") :]].read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    for i in range(0, len(data), 65536):
                        self.wfile.write(data[i : i + 65536])
                        self._count(len(data[i : i + 65536]))
                        time.sleep(0.05)
                except OSError:
                    return
            elif path.startswith("/redirect/"):
                self.send_response(302)
                self.send_header("Location", "http://" + path[len("/redirect/") :])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/endless.mp4":  # no Content-Length: only the bytes on disk can stop it
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Connection", "close")
                self.end_headers()
                chunk = b"\0" * 65536
                try:
                    for _ in range(16 * 1024):  # 1 GiB at most
                        self.wfile.write(chunk)
                        self._count(len(chunk))
                except OSError:
                    return
            elif path == "/slow.mp4":  # one byte a second
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                try:
                    for _ in range(120):
                        self.wfile.write(b"\0")
                        self.wfile.flush()
                        self._count(1)
                        time.sleep(1.0)
                except OSError:
                    return
            else:
                self.send_error(404)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up (a refused or cancelled download) is what these tests do


@contextmanager
def serve_media(files: dict[str, Path], host: str = "127.0.0.1") -> Iterator[MediaServer]:
    """A threaded HTTP server on ``host`` (a free port) serving ``files`` (path -> file) and the bad paths."""
    server = MediaServer(host, 0, files)
    httpd = _QuietServer((host, 0), _handler(server))
    httpd.daemon_threads = True
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
