"""Running the sniffer's own aiohttp applications (diagnostic server, pages, Admin UI bridge)."""

from __future__ import annotations

from aiohttp import web


async def serve_app(app: web.Application, host: str, port: int,
                    shutdown_timeout: float = 0.25) -> tuple[web.AppRunner, int]:
    """Run ``app`` on ``host:port`` (0: a free port); the runner to clean up and the bound port.

    Long-poll GETs can hang for pingInterval + pingTimeout (90 s with claude-mpm's settings):
    on cleanup they are cut after ``shutdown_timeout`` instead of holding the shutdown. A port
    that cannot be bound raises the OSError, with nothing left running.
    """
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])


def host_name(host: str) -> str:
    """The name in a Host header: ``[::1]:80`` -> ``::1``, ``LocalHost:80`` -> ``localhost``."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()
