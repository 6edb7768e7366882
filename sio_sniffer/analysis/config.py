"""What the analysis is told: thresholds, correlation rules and application profiles.

Rules and profiles are TOML files a user writes, so every mistake in them is reported as
``FILE:LINE: what is wrong`` (:class:`ConfigError`) instead of a traceback.

A rules file::

    [[rule]]
    in = { path = "/api/events" }              # or { nsp = "/", name = "claude_event" }
    out = { nsp = "/", name = "claude_event" }  # name may be a glob
    match = ["data.session_id = session_id"]   # in key path = out key path (or one path for both)
    within = "2s"

    [[role]]
    role = "dashboard"                          # hook | dashboard | client
    user_agent = "*Chrome*"                     # globs; every given key must match

A profile (``sio_sniffer/profiles/NAME.toml``) describes one application: see claude-mpm.toml.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
ROLES = ("hook", "dashboard", "client")
DEFAULT_INGEST_PATHS = ("/api/events",)
DEFAULT_SLOW_INGEST_MS = 300.0


class ConfigError(ValueError):
    """A rules or profile file is wrong; ``str()`` is ``FILE:LINE: reason``."""

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True, slots=True)
class KeyPath:
    """A dotted path into a payload (``data.items.0.id``); digits index lists."""

    parts: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> KeyPath:
        parts = tuple(p for p in text.strip().split(".") if p)
        if not parts:
            raise ValueError(f"empty key path {text!r}")
        return cls(parts)

    def get(self, value: Any) -> Any:
        """The value at this path, or :data:`MISSING`."""
        for part in self.parts:
            if isinstance(value, dict):
                if part not in value:
                    return MISSING
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return MISSING
        return value

    def __str__(self) -> str:
        return ".".join(self.parts)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True)
class Rule:
    """In→out correlation declared by a user: which ingest opens, which emit closes, how soon."""

    in_path: str | None = None
    in_nsp: str | None = None
    in_name: str | None = None
    out_nsp: str | None = None
    out_name: str | None = None
    match: tuple[tuple[KeyPath, KeyPath], ...] = ()
    within: float | None = None
    label: str = ""

    def accepts_in_http(self, path: str) -> bool:
        return self.in_path is not None and _same_path(self.in_path, path)

    def accepts_in_event(self, nsp: str | None, name: str | None) -> bool:
        if self.in_path is not None or (self.in_name is None and self.in_nsp is None):
            return False
        return _glob(self.in_nsp, nsp) and _glob(self.in_name, name)

    def accepts_out(self, nsp: str | None, name: str | None) -> bool:
        return _glob(self.out_nsp, nsp) and _glob(self.out_name, name)


@dataclass(frozen=True, slots=True)
class RoleRule:
    """Sets a client's role when every given glob matches its user agent, peer and namespace."""

    role: str
    user_agent: str | None = None
    peer: str | None = None
    nsp: str | None = None

    def matches(self, user_agent: str | None, peer: str | None, nsps: Sequence[str]) -> bool:
        if not _glob(self.user_agent, user_agent) or not _glob(self.peer, peer):
            return False
        return self.nsp is None or any(fnmatchcase(n, self.nsp) for n in nsps)


@dataclass(frozen=True, slots=True)
class Profile:
    """What the sniffer knows about one application (ports, ingest, what its dashboard hears)."""

    name: str
    description: str = ""
    listen_port: int | None = None
    upstream_port: int | None = None
    move_message: str = ""
    ingest_paths: tuple[str, ...] = ()
    ingest_max_body: int | None = None
    slow_ingest_ms: float | None = None
    nsp: str | None = None
    listens: frozenset[str] = frozenset()
    ignores: frozenset[str] = frozenset()
    required_fields: tuple[str, ...] = ()
    rooms: bool = True
    rules: tuple[Rule, ...] = ()
    roles: tuple[RoleRule, ...] = ()
    source: str = ""
    # [cluster]: what --cluster, --cluster-node and --cluster-channel say, for every node of the
    # app's deployment in one file.
    cluster_url: str | None = None
    cluster_node: str | None = None
    cluster_channels: tuple[str, ...] = ()


@dataclass(slots=True)
class AnalysisConfig:
    """Thresholds and tables of the analysis. ``None`` means: the profile's value, else default.

    Durations are seconds. Table bounds cap memory whatever the traffic: the oldest entry goes
    first, and the summary counts what was dropped.
    """

    ingest_paths: Sequence[str] | None = None
    deadline: float = 2.0
    broadcast_window: float = 0.2
    duplicate_window: float = 1.0
    connect_deadline: float = 3.0
    ack_deadline: float = 5.0
    # A lost event that still comes out this long after its deadline is reported late.
    late_window: float = 10.0
    # With a profile that has hooks: a dashboard connected this long with no hook POST at all
    # is told (the hooks are not installed, or post to another port).
    hook_silence: float = 30.0
    slow_ingest_ms: float | None = None
    ingest_max_body: int | None = None
    ping_grace: float = 0.5
    rules: Sequence[Rule | RoleRule] = ()  # what load_rules returns; roles may be mixed in
    roles: Sequence[RoleRule] = ()
    profile: Profile | None = None
    strict_client_events: bool = False
    # With --cluster: this node's name; deliveries on the other nodes then close expectations
    # opened here, and a loss is explained by node (see analysis/cluster.py).
    cluster_node: str | None = None
    # Stamps of several captures (report a.jsonl b.jsonl) are only as close as the hosts' clocks
    # after the offsets are corrected: a delivery stamped up to this long before its ingest
    # still answers it. 0 live, where one clock stamps everything.
    causality_tolerance: float = 0.0
    max_sessions: int = 4096
    max_closed_sessions: int = 1024
    max_expectations: int = 20_000
    max_groups: int = 20_000
    max_pending: int = 20_000
    max_rooms: int = 256
    max_recent_emits: int = 256
    max_late_watch: int = 256  # lost events watched for a late delivery
    flag_repeat: float = 10.0
    latency_samples: int = 4096

    def effective_ingest_paths(self) -> tuple[str, ...]:
        if self.ingest_paths is not None:
            return tuple(self.ingest_paths)
        if self.profile and self.profile.ingest_paths:
            return self.profile.ingest_paths
        return DEFAULT_INGEST_PATHS

    def effective_slow_ingest_ms(self) -> float:
        if self.slow_ingest_ms is not None:
            return self.slow_ingest_ms
        if self.profile and self.profile.slow_ingest_ms is not None:
            return self.profile.slow_ingest_ms
        return DEFAULT_SLOW_INGEST_MS

    def effective_ingest_max_body(self) -> int | None:
        if self.ingest_max_body is not None:
            return self.ingest_max_body
        return self.profile.ingest_max_body if self.profile else None

    def all_rules(self) -> tuple[Rule, ...]:
        mine = tuple(r for r in self.rules if isinstance(r, Rule))
        return mine + (self.profile.rules if self.profile else ())

    def all_roles(self) -> tuple[RoleRule, ...]:
        mine = tuple(self.roles) + tuple(r for r in self.rules if isinstance(r, RoleRule))
        return mine + (self.profile.roles if self.profile else ())


def _glob(pattern: str | None, value: str | None) -> bool:
    return pattern is None or (value is not None and fnmatchcase(value, pattern))


def _same_path(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_duration(value: object) -> float:
    """``"2s"``, ``"500ms"``, ``"1.5m"`` or a number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '2s' or '500ms', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            scale = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[m.group(2)]
            return float(m.group(1)) * scale
    raise ValueError(f"expected a duration like '2s' or '500ms', got {value!r}")


class _Source:
    """A TOML file's text, to turn a table or key back into the line a user should look at."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def error(self, line: int | None, reason: str) -> ConfigError:
        return ConfigError(self.path, line, reason)

    def table_lines(self, header: str) -> list[int]:
        """1-based line numbers of each ``[[header]]`` (or ``[header]``), in order."""
        pattern = re.compile(r"^\s*\[\[?\s*" + re.escape(header) + r"\s*\]\]?\s*(#.*)?$")
        return [i + 1 for i, text in enumerate(self.lines) if pattern.match(text)]

    def key_line(self, start: int | None, key: str) -> int | None:
        """Line of ``key =`` in the table starting at ``start`` (or the file's top)."""
        pattern = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
        begin = start or 1
        for i in range(begin, len(self.lines) + 1):
            text = self.lines[i - 1]
            if i > begin and text.lstrip().startswith("["):
                break
            if pattern.match(text):
                return i
        return start


def _read_toml(path: str | Path) -> tuple[_Source, dict[str, Any]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(p, None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(p, None, f"cannot read: {exc}") from None
    source = _Source(p, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise source.error(int(m.group(1)) if m else None, f"not valid TOML: {exc}") from None
    return source, data


_RULE_KEYS = {"in", "out", "match", "within", "name"}
_IN_KEYS = {"path", "nsp", "name"}
_OUT_KEYS = {"nsp", "name"}
_ROLE_KEYS = {"role", "user_agent", "peer", "nsp"}


def _str_or_none(source: _Source, line: int | None, table: dict[str, Any], key: str,
                 where: str) -> str | None:
    value = table.get(key)
    if value is None or isinstance(value, str):
        return value
    raise source.error(line, f"{where}: '{key}' must be a string, got {value!r}")


def _check_keys(source: _Source, start: int | None, table: dict[str, Any], known: set[str],
                where: str) -> None:
    unknown = set(table) - known
    if unknown:
        key = sorted(unknown)[0]
        raise source.error(source.key_line(start, key),
                           f"{where}: unknown key '{key}' (known: {', '.join(sorted(known))})")


def _array_of_tables(source: _Source, tables: object, kind: str,
                     known: set[str]) -> Iterator[tuple[int | None, dict[str, Any], str]]:
    """Each ``[[kind]]`` table, checked for unknown keys, with its first line and its name."""
    if not isinstance(tables, list):
        raise source.error(source.key_line(None, kind),
                           f"'{kind}' must be an array of tables: write [[{kind}]]")
    starts = source.table_lines(kind)
    for i, table in enumerate(tables):
        start = starts[i] if i < len(starts) else None
        where = f"{kind} {i + 1}"
        if not isinstance(table, dict):
            raise source.error(start, f"{where} must be a table")
        _check_keys(source, start, table, known, where)
        yield start, table, where


def _parse_rules(source: _Source, tables: object) -> tuple[Rule, ...]:
    return tuple(_parse_rule(source, start, table, where)
                 for start, table, where in _array_of_tables(source, tables, "rule", _RULE_KEYS))


def _parse_rule(source: _Source, start: int | None, table: dict[str, Any], where: str) -> Rule:
    inn = table.get("in")
    if not isinstance(inn, dict) or not inn:
        raise source.error(source.key_line(start, "in"),
                           f"{where}: 'in' is required, e.g. in = {{ path = \"/api/events\" }} "
                           "or in = { nsp = \"/\", name = \"chat\" }")
    line_in = source.key_line(start, "in")
    bad = set(inn) - _IN_KEYS
    if bad:
        raise source.error(line_in, f"{where}: unknown key in 'in': {sorted(bad)[0]!r} "
                                    "(known: path, nsp, name)")
    in_path = _str_or_none(source, line_in, inn, "path", where)
    in_nsp = _str_or_none(source, line_in, inn, "nsp", where)
    in_name = _str_or_none(source, line_in, inn, "name", where)
    if in_path is not None and (in_nsp is not None or in_name is not None):
        raise source.error(line_in, f"{where}: 'in' is either an HTTP path or a Socket.IO "
                                    "nsp/name, not both")
    out = table.get("out", {})
    line_out = source.key_line(start, "out")
    if not isinstance(out, dict):
        raise source.error(line_out, f"{where}: 'out' must be a table like "
                                     "{ nsp = \"/\", name = \"claude_event\" }")
    bad = set(out) - _OUT_KEYS
    if bad:
        raise source.error(line_out, f"{where}: unknown key in 'out': {sorted(bad)[0]!r} "
                                     "(known: nsp, name)")
    match_value = table.get("match", [])
    line_match = source.key_line(start, "match")
    if isinstance(match_value, str):
        match_value = [match_value]
    if not isinstance(match_value, list) or not all(isinstance(m, str) for m in match_value):
        raise source.error(line_match, f"{where}: 'match' must be a list of key paths, "
                                       "e.g. [\"data.session_id = session_id\"]")
    pairs = []
    for item in match_value:
        left, _, right = item.partition("=")
        try:
            a = KeyPath.parse(left)
            b = KeyPath.parse(right) if right.strip() else a
        except ValueError as exc:
            raise source.error(line_match, f"{where}: {exc}") from None
        pairs.append((a, b))
    within = None
    if "within" in table:
        try:
            within = parse_duration(table["within"])
        except ValueError as exc:
            raise source.error(source.key_line(start, "within"), f"{where}: {exc}") from None
    label = table.get("name", "")
    if not isinstance(label, str):
        raise source.error(source.key_line(start, "name"), f"{where}: 'name' must be a string")
    return Rule(in_path=in_path, in_nsp=in_nsp, in_name=in_name,
                out_nsp=_str_or_none(source, line_out, out, "nsp", where),
                out_name=_str_or_none(source, line_out, out, "name", where),
                match=tuple(pairs), within=within, label=label or where)


def _parse_roles(source: _Source, tables: object) -> tuple[RoleRule, ...]:
    roles = []
    for start, table, where in _array_of_tables(source, tables, "role", _ROLE_KEYS):
        role = table.get("role")
        if role not in ROLES:
            raise source.error(source.key_line(start, "role"),
                               f"{where}: 'role' must be one of {', '.join(ROLES)}, got {role!r}")
        roles.append(RoleRule(role=str(role),
                              user_agent=_str_or_none(source, start, table, "user_agent", where),
                              peer=_str_or_none(source, start, table, "peer", where),
                              nsp=_str_or_none(source, start, table, "nsp", where)))
    return tuple(roles)


def load_rules(path: str | Path) -> tuple[Rule | RoleRule, ...]:
    """Read a ``--rules`` TOML file: its ``[[rule]]`` then its ``[[role]]`` tables, in order.

    The result goes straight into ``AnalysisConfig(rules=...)``.
    """
    source, data = _read_toml(path)
    unknown = set(data) - {"rule", "role"}
    if unknown:
        key = sorted(unknown)[0]
        raise source.error(source.key_line(None, key) or _header_line(source, key),
                           f"unknown top-level key '{key}' (a rules file holds [[rule]] and "
                           "[[role]] tables)")
    return _parse_rules(source, data.get("rule", [])) + _parse_roles(source, data.get("role", []))


def _header_line(source: _Source, key: str) -> int | None:
    lines = source.table_lines(key)
    return lines[0] if lines else None


_PROFILE_TABLES: dict[str, set[str]] = {
    "proxy": {"listen", "upstream", "message"},
    "ingest": {"paths", "max_body", "slow_ms"},
    "dashboard": {"nsp", "listens", "ignores", "required_fields"},
    "broadcast": {"rooms"},
    "cluster": {"redis", "node", "channels"},
}


def available_profiles() -> list[str]:
    """Names of the profiles shipped with the package."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by name (``claude-mpm``) or a user's profile file by path."""
    candidate = Path(name_or_path)
    if not candidate.is_file():
        if str(name_or_path).endswith(".toml") or "/" in str(name_or_path):
            raise ConfigError(candidate, None, "no such profile file")
        shipped = PROFILES_DIR / f"{name_or_path}.toml"
        if not shipped.is_file():
            raise ConfigError(candidate, None, "unknown profile; shipped profiles: "
                              f"{', '.join(available_profiles()) or 'none'}, or give a .toml path")
        candidate = shipped
    source, data = _read_toml(candidate)
    known = {"name", "description", "rule", "role", *_PROFILE_TABLES}
    unknown = set(data) - known
    if unknown:
        key = sorted(unknown)[0]
        raise source.error(source.key_line(None, key) or _header_line(source, key),
                           f"unknown key '{key}' (known: {', '.join(sorted(known))})")
    tables: dict[str, dict[str, Any]] = {}
    for table_name, keys in _PROFILE_TABLES.items():
        table = data.get(table_name, {})
        line = _header_line(source, table_name)
        if not isinstance(table, dict):
            raise source.error(line, f"'{table_name}' must be a table: write [{table_name}]")
        _check_keys(source, line, table, keys, f"[{table_name}]")
        tables[table_name] = table

    def typed(table_name: str, key: str, kind: type | tuple[type, ...], what: str) -> Any:
        value = tables[table_name].get(key)
        if value is None:
            return None
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if ok and isinstance(value, list):
            ok = all(isinstance(v, str) for v in value)
        if not ok:
            line = source.key_line(_header_line(source, table_name), key)
            raise source.error(line, f"[{table_name}] {key} must be {what}, got {value!r}")
        return value

    name = data.get("name", candidate.stem)
    if not isinstance(name, str):
        raise source.error(source.key_line(None, "name"), "'name' must be a string")
    rooms = tables["broadcast"].get("rooms", True)
    if not isinstance(rooms, bool):
        raise source.error(source.key_line(_header_line(source, "broadcast"), "rooms"),
                           f"[broadcast] rooms must be true or false, got {rooms!r}")
    slow = typed("ingest", "slow_ms", (int, float), "a number of milliseconds")
    return Profile(
        name=name,
        description=str(data.get("description", "")),
        listen_port=typed("proxy", "listen", int, "a port number"),
        upstream_port=typed("proxy", "upstream", int, "a port number"),
        move_message=typed("proxy", "message", str, "a string") or "",
        ingest_paths=tuple(typed("ingest", "paths", list, "a list of paths") or ()),
        ingest_max_body=typed("ingest", "max_body", int, "a number of bytes"),
        slow_ingest_ms=float(slow) if slow is not None else None,
        nsp=typed("dashboard", "nsp", str, "a namespace like '/'"),
        listens=frozenset(typed("dashboard", "listens", list, "a list of event names") or ()),
        ignores=frozenset(typed("dashboard", "ignores", list, "a list of event names") or ()),
        required_fields=tuple(typed("dashboard", "required_fields", list,
                                    "a list of field names") or ()),
        rooms=rooms,
        rules=_parse_rules(source, data.get("rule", [])),
        roles=_parse_roles(source, data.get("role", [])),
        source=str(candidate),
        cluster_url=typed("cluster", "redis", str, "a URL like 'redis://127.0.0.1:6379/0'"),
        cluster_node=typed("cluster", "node", str, "this node's name"),
        cluster_channels=tuple(typed("cluster", "channels", list,
                                     "a list of adapter channels") or ()),
    )
