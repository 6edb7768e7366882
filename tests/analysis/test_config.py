"""Rules and profiles: TOML files read into typed config, mistakes reported as FILE:LINE."""

from __future__ import annotations

from pathlib import Path

import pytest

from sio_sniffer.analysis import (
    ConfigError,
    RoleRule,
    Rule,
    available_profiles,
    load_profile,
    load_rules,
    parse_duration,
)


def test_claude_mpm_profile_ships_the_facts() -> None:
    """The shipped claude-mpm profile has its ports, ingest path, listened names and fields."""
    profile = load_profile("claude-mpm")
    assert "claude-mpm" in available_profiles()
    assert (profile.listen_port, profile.upstream_port) == (8765, 8766)
    assert "--port 8766" in profile.move_message
    assert profile.ingest_paths == ("/api/events",) and profile.slow_ingest_ms == 300
    assert "claude_event" in profile.listens and "mpm_event" not in profile.listens
    assert profile.required_fields == ("session_id", "correlation_id", "cwd", "subtype")
    assert profile.rooms is False


def test_unknown_profile_lists_the_shipped_ones() -> None:
    """An unknown profile name says which profiles exist."""
    with pytest.raises(ConfigError, match="claude-mpm"):
        load_profile("nope")


def test_rules_file_is_read(tmp_path: Path) -> None:
    """[[rule]] and [[role]] tables become Rule and RoleRule objects in file order."""
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nin = { path = "/api/events" }\nout = { nsp = "/", name = "x*" }\n'
                    'match = ["data.id = id", "kind"]\nwithin = "500ms"\n\n'
                    '[[role]]\nrole = "dashboard"\nuser_agent = "*Chrome*"\n')
    rule, role = load_rules(path)
    assert isinstance(rule, Rule) and isinstance(role, RoleRule)
    assert rule.within == 0.5 and rule.accepts_out("/", "xyz") and not rule.accepts_out("/", "y")
    assert [(str(a), str(b)) for a, b in rule.match] == [("data.id", "id"), ("kind", "kind")]
    assert role.matches("Mozilla/5.0 Chrome/1", None, ["/"])


@pytest.mark.parametrize(("text", "line", "words"), [
    ('[[rule]]\nin = { path = "/a" }\nwithin = "soon"\n', 3, "duration"),
    ('[[rule]]\nin = { path = "/a" }\n\n[[rule]]\nout = { name = "x" }\n', 4, "'in' is required"),
    ('[[rule]]\nin = { path = "/a", nsp = "/" }\n', 2, "not both"),
    ('[[rule]]\nin = { path = "/a" }\nmatchs = ["x"]\n', 3, "unknown key 'matchs'"),
    ('[[role]]\nrole = "admin"\n', 2, "hook, dashboard, client"),
    ('[[rule]\nin = 1\n', 1, "not valid TOML"),
])
def test_rules_errors_name_file_and_line(tmp_path: Path, text: str, line: int,
                                         words: str) -> None:
    """Every mistake in a rules file is reported as FILE:LINE: reason."""
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert words in str(info.value)


def test_profile_errors_name_file_and_line(tmp_path: Path) -> None:
    """A user profile with a wrongly typed value points at its line."""
    path = tmp_path / "app.toml"
    path.write_text('name = "app"\n[dashboard]\nnsp = "/"\nlistens = "claude_event"\n')
    with pytest.raises(ConfigError, match=r"app\.toml:4: \[dashboard\] listens must be a list"):
        load_profile(path)


def test_missing_rules_file() -> None:
    """A missing rules file is a clear error, not a traceback."""
    with pytest.raises(ConfigError, match="no such file"):
        load_rules("/nonexistent/rules.toml")


def test_durations() -> None:
    """Durations accept s, ms, m and plain numbers; nonsense is refused."""
    assert parse_duration("2s") == 2 and parse_duration("250ms") == 0.25
    assert parse_duration("1.5m") == 90 and parse_duration(3) == 3
    with pytest.raises(ValueError):
        parse_duration("-1s")
