"""The ``--metrics`` listener: ``GET /metrics`` (Prometheus text) and ``GET /healthz`` (JSON).

It is handed two callables (the exposition and the health report) rather than the metrics
themselves, so the pages layer stays free of the sinks. Served with aiohttp on the observer's
own event loop (not prometheus_client's threaded server): the scrape-time figures are then read
from the loop that changes them. The loopback rule is the live page's: off loopback a token is
required (``Authorization: Bearer TOKEN``, which Prometheus sends from ``authorization:
credentials``, or ``?token=``), and without one only loopback Host names are answered.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from sio_sniffer.model.addresses import bind_policy
from sio_sniffer.web.app import host_name, serve_app

Exposition = Callable[[], tuple[bytes, str]]  # body and content type
HealthReport = Callable[[], tuple[int, dict[str, Any]]]  # HTTP status and body


class MetricsError(Exception):
    """The listener cannot start; the message says why and what to change."""


def health_handler(report: HealthReport) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A /healthz handler, for this listener and the live page alike."""
    async def healthz(request: web.Request) -> web.Response:
        status, body = report()
        return web.Response(status=status, body=orjson.dumps(body),
                            content_type="application/json")
    return healthz


class MetricsServer:
    """``MetricsServer(host, port, exposition, health, token=None)``; ``await start()``, ``url``,
    ``stop()``. A token is asked for when given or when ``host`` is not loopback (made up then)."""

    def __init__(self, host: str, port: int, exposition: Exposition,
                 health: HealthReport, token: str | None = None) -> None:
        self.host = host
        self.port = port
        self.policy = bind_policy(host, "metrics listener", "token", token=token)
        self.token = self.policy.token
        self._exposition = exposition
        self._runner: web.AppRunner | None = None
        self.app = web.Application(middlewares=[self._guard])
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/healthz", health_handler(health))

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/metrics"

    async def start(self) -> None:
        try:
            self._runner, self.port = await serve_app(self.app, self.host, self.port)
        except OSError as exc:
            why = "the port is in use" if exc.errno == errno.EADDRINUSE else \
                exc.strerror or str(exc)
            raise MetricsError(f"cannot serve metrics on {self.host}:{self.port}: {why} "
                               "(pick another with --metrics HOST:PORT)") from None

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        offered = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else \
            request.query.get("token")
        status = self.policy.admits(host_name(request.host), offered)
        if status == 403:
            return web.Response(status=403, text="this listener answers to loopback "
                                "addresses only")
        if status == 401:
            return web.Response(status=401, text="a token is required: send the one sio-sniffer "
                                "printed at start as 'Authorization: Bearer TOKEN'")
        return await handler(request)

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = self._exposition()
        # content_type carries its own parameters (version, charset): set the header as it is
        return web.Response(body=body, headers={"Content-Type": content_type})
