"""The one secrets policy: which header, query and cookie names hold secrets, and redaction."""

from __future__ import annotations

import pytest

from sio_sniffer.model import (
    fingerprint,
    fingerprint_once,
    is_fingerprint,
    is_secret_header,
    is_secret_name,
    redact_params,
    redact_url,
)

SECRET_HEADERS = ["Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key",
                  "X-Auth-Token", "X-Access-Token", "X-CSRF-Token", "X-XSRF-TOKEN",
                  "X-Session-Id", "X-Signature", "X-Client-Secret", "x-jwt-assertion"]
CLEAR_HEADERS = ["Content-Type", "X-Request-Id", "Host", "User-Agent", "Origin", "Upgrade",
                 "Connection", "Sec-WebSocket-Key", "sec-websocket-key", "Sec-WebSocket-Accept",
                 "Sec-WebSocket-Extensions", "Sec-WebSocket-Version", "X-Forwarded-For",
                 ":authority"]
SECRET_NAMES = ["token", "access_token", "api_key", "apikey", "KEY", "signature", "sig",
                "sessionid", "PHPSESSID", "csrftoken", "_xsrf", "password", "passwd",
                "client_secret", "credentials", "bearer", "jwt", "auth", "connect.sid.sig"]
# Engine.IO's own query parameters: the sniffer finds sessions by them, so they stay in clear.
CLEAR_NAMES = ["EIO", "transport", "t", "sid", "b64", "j", "nsp", "room", "user", "id"]


@pytest.mark.parametrize(("name", "secret"), [*((n, True) for n in SECRET_HEADERS),
                                              *((n, False) for n in CLEAR_HEADERS)])
def test_header_names(name: str, secret: bool) -> None:
    assert is_secret_header(name) is secret


@pytest.mark.parametrize(("name", "secret"), [*((n, True) for n in SECRET_NAMES),
                                              *((n, False) for n in CLEAR_NAMES)])
def test_query_cookie_and_form_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_fingerprint_format_and_idempotence() -> None:
    fp = fingerprint("s3cret")
    assert fp.startswith("sha256:") and len(fp) == len("sha256:") + 8
    assert is_fingerprint(fp) and not is_fingerprint("s3cret")
    assert fingerprint_once(fp) == fp
    assert fingerprint_once("s3cret") == fp


def test_redact_params_keeps_engineio_parameters() -> None:
    query = {"EIO": "4", "transport": "polling", "t": "OaB1", "sid": "abc", "token": "s3cret"}
    assert redact_params(query) == {**query, "token": fingerprint("s3cret")}


def test_redact_url_fingerprints_only_secret_parameters() -> None:
    target = "/socket.io/?EIO=4&transport=websocket&sid=abc&access_token=s3cret"
    redacted = redact_url(target)
    assert "s3cret" not in redacted
    assert redacted.startswith("/socket.io/?EIO=4&transport=websocket&sid=abc&access_token=")
    assert fingerprint("s3cret").replace(":", "%3A") in redacted
    assert redact_url(redacted) == redacted
    full = "https://example.com/socket.io/?EIO=4&key=k1"
    assert redact_url(full) == "https://example.com/socket.io/?EIO=4&key=" + \
        fingerprint("k1").replace(":", "%3A")


def test_redact_url_leaves_urls_without_secrets_byte_for_byte() -> None:
    for url in ("/socket.io/?EIO=4&transport=polling&t=x%20y", "/plain", "/a?b"):
        assert redact_url(url) == url
