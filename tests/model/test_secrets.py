"""The one secrets policy: which header, query and cookie names hold secrets, and redaction."""

from __future__ import annotations

import pytest

from sio_sniffer.model import (
    add_secret_names,
    fingerprint,
    fingerprint_once,
    is_fingerprint,
    is_secret_header,
    is_secret_name,
    redact_auth,
    redact_header,
    redact_params,
    redact_url,
    secrets,
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
    assert fingerprint("s3cret") in redacted
    assert redact_url(redacted) == redacted
    full = "https://example.com/socket.io/?EIO=4&key=k1"
    assert redact_url(full) == "https://example.com/socket.io/?EIO=4&key=" + \
        fingerprint("k1")


def test_redact_url_leaves_urls_without_secrets_byte_for_byte() -> None:
    for url in ("/socket.io/?EIO=4&transport=polling&t=x%20y", "/plain", "/a?b"):
        assert redact_url(url) == url


JWT_TOKEN = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9."
             "c2lnbmF0dXJlLW9mLXRoZS10b2tlbg")


def test_a_jwt_is_fingerprinted_wherever_it_stands_in_a_url() -> None:
    for url in (f"/ws/{JWT_TOKEN}/socket.io/?EIO=4", f"/socket.io/?EIO=4&q={JWT_TOKEN}",
                f"https://h.example/cb#{JWT_TOKEN}"):
        redacted = redact_url(url)
        assert JWT_TOKEN not in redacted and fingerprint(JWT_TOKEN) in redacted
        assert redact_url(redacted) == redacted
    assert redact_params({"state": JWT_TOKEN, "n": 3}) == {"state": fingerprint(JWT_TOKEN), "n": 3}


def test_userinfo_is_fingerprinted() -> None:
    url = "https://alice:pa55word@h.example:8443/socket.io/?EIO=4"
    assert redact_url(url) == f"https://{fingerprint('alice:pa55word')}@h.example:8443/socket.io/?EIO=4"
    assert redact_url(redact_url(url)) == redact_url(url)
    assert redact_url("mailto:a@b.example") == "mailto:a@b.example"


def test_redact_header() -> None:
    assert redact_header("X-Api-Key", "k") == fingerprint("k")
    assert redact_header("Referer", "http://h/page?token=t1&x=1") == \
        f"http://h/page?token={fingerprint('t1')}&x=1"
    assert redact_header("X-Trace", f"a {JWT_TOKEN} b") == f"a {fingerprint(JWT_TOKEN)} b"
    assert redact_header("User-Agent", "python-requests") == "python-requests"


def test_connect_auth_per_key_and_empty_auth_as_nothing() -> None:
    assert redact_auth({"token": "t", "n": 1}) == {"token": fingerprint("t"), "n": fingerprint(1)}
    assert redact_auth({}) is None and redact_auth(None) is None
    assert redact_auth("bare-token") == fingerprint("bare-token")
    once = redact_auth({"token": "t"})
    assert redact_auth(once) == once


def test_secret_names_of_the_users_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "SECRET_NAME", secrets.SECRET_NAME)  # restored afterwards
    assert not is_secret_name("x-tenant") and not is_secret_header("X-Tenant")
    add_secret_names(["x-tenant", "^pin$"])
    assert is_secret_name("X-Tenant") and is_secret_header("x-tenant") and is_secret_name("PIN")
    assert not is_secret_name("spinner") and is_secret_name("token")
    assert redact_url("/s?pin=1234") == f"/s?pin={fingerprint('1234')}"
    with pytest.raises(ValueError, match="not a regular expression"):
        add_secret_names(["(unclosed"])
