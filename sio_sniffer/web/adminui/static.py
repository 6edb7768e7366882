"""The Admin UI itself (``--admin-ui-static``): finding its build, making it work offline."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sio_sniffer.web.adminui.options import AdminUIError

_EXTERNAL_LINK = re.compile(rb"<link[^>]*href=\"(?:https?:)?//[^\"]*\"[^>]*>")
# When served by the bridge, the connection form is pre-filled with the bridge's own address.
_PREFILL = (b"<script>try{localStorage.getItem(\"server_url\")||localStorage.setItem("
            b"\"server_url\",location.origin)}catch(e){}</script>")


def find_ui_dist(path: str | os.PathLike[str]) -> Path:
    """The directory holding the Admin UI's ``index.html``: accepts ``ui/dist`` itself, the
    package directory, or a directory with ``node_modules/@socket.io/admin-ui``."""
    base = Path(path).expanduser()
    candidates = [base, base / "dist", base / "ui" / "dist",
                  base / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"]
    for candidate in candidates:
        if (candidate / "index.html").is_file():
            return candidate.resolve()
    raise AdminUIError(f"{base} holds no Admin UI build (no index.html in it, dist/, ui/dist/ "
                       "or node_modules/@socket.io/admin-ui/ui/dist/); install it with "
                       "`npm install @socket.io/admin-ui` and pass that directory")


def offline_index(path: Path) -> bytes:
    """index.html without the Google Fonts / CDN icon stylesheets (they block rendering when
    there is no internet) and with the connection form pre-filled with this server."""
    html = _EXTERNAL_LINK.sub(b"", path.read_bytes())
    at = html.find(b"<script")
    return html[:at] + _PREFILL + html[at:] if at >= 0 else html + _PREFILL
