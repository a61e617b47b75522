"""A tiny webhook receiver (werkzeug server in a thread) that checks Xero's signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


def signature_valid(body: bytes, signature: str | None, key: str) -> bool:
    """Xero's algorithm: base64(HMAC-SHA256(raw body, webhook key)), compared in constant time."""
    expected = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
    return signature is not None and hmac.compare_digest(expected, signature)


class Receiver:
    """Records every POST; answers 200 for good signatures, 401 for bad (or `fail_first` 500s)."""

    def __init__(self, key: str, *, fail_first: int = 0, always_ok: bool = False) -> None:
        self.key, self.fail_first, self.always_ok = key, fail_first, always_ok
        self.received: list[tuple[bytes, str | None, int]] = []
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}/webhooks/xero"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def _app(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        signature = request.headers.get("x-xero-signature")
        with self._lock:
            if len(self.received) < self.fail_first:
                status = 500
            elif self.always_ok or signature_valid(body, signature, self.key):
                status = 200
            else:
                status = 401
            self.received.append((body, signature, status))
        return Response(b"", status=status)(environ, start_response)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[bytes, str | None, int]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} webhook posts, got {len(self.received)}")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
