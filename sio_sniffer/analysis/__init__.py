"""Analysis: consumers of records that say where the event flow breaks.

``Analyzer(config, emit)`` reads every record and emits ``broadcast``, ``flag``, ``rooms`` and
``summary`` records; ``load_profile`` and ``load_rules`` read the TOML files that tune it.
"""

from sio_sniffer.analysis.analyzer import Analyzer
from sio_sniffer.analysis.config import (
    AnalysisConfig,
    ConfigError,
    Profile,
    RoleRule,
    Rule,
    available_profiles,
    load_profile,
    load_rules,
    parse_duration,
)

__all__ = [
    "AnalysisConfig",
    "Analyzer",
    "ConfigError",
    "Profile",
    "RoleRule",
    "Rule",
    "available_profiles",
    "load_profile",
    "load_rules",
    "parse_duration",
]
