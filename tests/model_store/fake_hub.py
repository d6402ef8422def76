"""A small HTTP server that answers as the Hugging Face hub does for file downloads (``HF_ENDPOINT``):
``HEAD``/``GET /{repo}/resolve/{revision}/{file}`` with the hub's headers (``X-Repo-Commit``, an ETag
that is the git blob SHA-1 of a small file or, as ``X-Linked-Etag``, the SHA-256 of a large one),
ranges, the hub's error codes, an optional token, and faults to order: a connection cut mid-file,
a file that answers 500."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LARGE = 2048  # bytes from which a file is served as the hub serves LFS files


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class Hub:
    repos: dict[str, dict[str, bytes]]
    token: str | None = None
    cut_once: set[str] = field(default_factory=set)  # "repo/file": the first GET stops halfway
    failing: set[str] = field(default_factory=set)  # "repo/file": every request answers 500
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, "repo/file", Range
    url: str = ""

    def gets(self, what: str) -> list[str | None]:
        """The Range headers of the GETs of one file (None: the whole file)."""
        return [ranged for method, target, ranged in self.requests if method == "GET" and target == what]


class _Handler(http.server.BaseHTTPRequestHandler):
    hub: Hub
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _error(self, status: int, code: str | None) -> None:
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _answer(self, *, body: bool) -> None:
        hub = self.hub
        parts = unquote(self.path.split("?", 1)[0]).lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            self._error(404, None)
            return
        repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
        target = f"{repo}/{filename}"
        hub.requests.append((self.command, target, self.headers.get("Range")))
        if hub.token is not None and self.headers.get("Authorization") != f"Bearer {hub.token}":
            self._error(401, "GatedRepo")
            return
        if repo not in hub.repos:
            self._error(404, "RepoNotFound")
            return
        files = hub.repos[repo]
        if filename not in files:
            self._error(404, "EntryNotFound")
            return
        if target in hub.failing:
            self._error(500, None)
            return
        data = files[filename]
        start = 0
        ranged = self.headers.get("Range")
        if ranged and body and ranged.startswith("bytes="):
            start = int(ranged.removeprefix("bytes=").split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        if len(data) >= LARGE:
            self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", f'"{git_blob_sha1(data)}"')
        else:
            self.send_header("ETag", f'"{git_blob_sha1(data)}"')
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if not body:
            return
        if target in hub.cut_once and not start:
            hub.cut_once.discard(target)
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        self.wfile.write(data[start:])


@contextlib.contextmanager
def serving(hub: Hub) -> Iterator[Hub]:
    handler = type("HubHandler", (_Handler,), {"hub": hub})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
