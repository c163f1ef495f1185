"""A real HTTP server on 127.0.0.1 for the download tests: serves one file, honours ``Range``, and can drop
the connection midway or ignore ``Range`` on request. It records the requests, so a test can prove that
nothing was fetched until the user asked."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    body: bytes
    #: The next this many GETs send the headers for the whole rest but stop after ``drop_after`` bytes.
    drops: int = 0
    drop_after: int = 0
    honour_range: bool = True
    #: Seconds to pause after each 64 KiB (a slow server, to cancel during a download).
    pause_s: float = 0.0
    requests: list[str | None] = field(default_factory=list)  # the Range header of each GET (None: none)


class _Handler(BaseHTTPRequestHandler):
    behaviour: Behaviour

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 -- http.server's name
        b = self.server.behaviour
        asked = self.headers.get("Range")
        b.requests.append(asked)
        if self.path != "/model.onnx":
            self.send_error(404, "Not Found")
            return
        start = int(asked.split("=")[1].split("-")[0]) if asked and b.honour_range else 0
        if start >= len(b.body) and asked and b.honour_range:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(b.body)}")
            self.end_headers()
            return
        rest = b.body[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(b.body) - 1}/{len(b.body)}")
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        if b.drops > 0:
            b.drops -= 1
            rest = rest[:b.drop_after]
        try:
            for i in range(0, len(rest), 65536):
                self.wfile.write(rest[i:i + 65536])
                self.wfile.flush()
                if b.pause_s:
                    threading.Event().wait(b.pause_s)
        except (BrokenPipeError, ConnectionResetError):  # the client went away (a cancelled download)
            pass
        self.close_connection = True


class LocalServer:
    """``with LocalServer(behaviour) as url:`` serves ``behaviour.body`` at ``url`` until the block ends."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.behaviour = behaviour
        self.server.daemon_threads = True

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/model.onnx"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
