"""The loopback rule (model/addresses.py): which hosts are loopback and what each kind of
listener needs off loopback."""

from __future__ import annotations

import pytest

from sio_sniffer.model.addresses import (
    ALLOW_REMOTE_FLAG,
    RemoteBindRefused,
    bind_policy,
    is_loopback,
)

TABLE = [
    ("127.0.0.1", True), ("127.0.0.2", True), ("127.255.255.254", True), ("::1", True),
    ("[::1]", True), ("localhost", True), ("LocalHost", True),
    ("0.0.0.0", False), ("::", False), ("[::]", False), ("192.168.1.20", False),
    ("10.0.0.1", False), ("example.com", False), ("localhost.evil.example", False),
    ("128.0.0.1", False), ("", False),
]


@pytest.mark.parametrize(("host", "loopback"), TABLE)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(("host", "loopback"), TABLE)
def test_token_listeners_make_up_a_token_off_loopback_only(host: str, loopback: bool) -> None:
    policy = bind_policy(host, "live page", "token")
    assert policy.remote is not loopback
    assert (policy.token is None) is loopback
    assert (policy.notice(8780) is None) is loopback


def test_a_given_token_is_kept_on_loopback_and_off_it() -> None:
    assert bind_policy("127.0.0.1", "live page", "token", token="t").token == "t"
    remote = bind_policy("0.0.0.0", "live page", "token", token="t")
    assert remote.token == "t"
    assert remote.notice(8780) == ("live page on 0.0.0.0:8780 is reachable from other machines; "
                                   "open it with ?token=t")
    metrics = bind_policy("::", "metrics listener", "token", token="t").notice(9100)
    assert metrics == ("metrics listener on [::]:9100 is reachable from other machines; "
                       "send 'Authorization: Bearer t'")


@pytest.mark.parametrize(("host", "loopback"), TABLE)
def test_opt_in_listeners_refuse_without_the_flag(host: str, loopback: bool) -> None:
    if loopback:
        assert bind_policy(host, "proxy", "opt-in").notice(8766) is None
        return
    with pytest.raises(RemoteBindRefused, match=ALLOW_REMOTE_FLAG):
        bind_policy(host, "proxy", "opt-in")
    notice = bind_policy(host, "proxy", "opt-in", allow_remote=True).notice(8766)
    assert notice is not None and "reachable from other machines" in notice
    assert ALLOW_REMOTE_FLAG in notice


@pytest.mark.parametrize(("host", "loopback"), TABLE)
def test_the_admin_ui_refuses_without_credentials(host: str, loopback: bool) -> None:
    if loopback:
        assert not bind_policy(host, "Admin UI bridge", "credentials").remote
        return
    with pytest.raises(RemoteBindRefused, match="--admin-ui-user and --admin-ui-password"):
        bind_policy(host, "Admin UI bridge", "credentials")
    policy = bind_policy(host, "Admin UI bridge", "credentials", credentials=True)
    assert policy.notice(8767) is not None


def test_admits_by_host_name_without_a_token_and_by_token_with_one() -> None:
    local = bind_policy("127.0.0.1", "live page", "token")
    assert local.admits("127.0.0.1", None) == 200
    assert local.admits("localhost", None) == 200
    assert local.admits("evil.example", None) == 403  # DNS rebinding
    remote = bind_policy("0.0.0.0", "live page", "token", token="secret")
    assert remote.admits("127.0.0.1", None) == 401
    assert remote.admits("127.0.0.1", "wrong") == 401
    assert remote.admits("192.168.1.2", "secret") == 200
