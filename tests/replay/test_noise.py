"""The rules of noise by nature, on the values the replay tests do not produce."""

from __future__ import annotations

from sio_sniffer.replay import noise

NOW = 1_796_300_000.0


def test_times_are_near_the_clock_in_seconds_milliseconds_or_microseconds() -> None:
    assert noise.rule(NOW * 1e6, (NOW + 3) * 1e6, NOW, NOW + 3) == noise.TIME
    assert noise.rule(int(NOW * 1000), int(NOW * 1000) + 9, NOW, NOW) == noise.TIME
    assert noise.rule("2026-12-03T12:00:00+01:00", "2026-12-04 08:00", NOW, NOW) == noise.TIME


def test_values_that_are_not_times_are_not_noise() -> None:
    # A large number far from either clock, a date without a time of day, booleans.
    assert noise.rule(10_000_000, 10_000_001, NOW, NOW) is None
    assert noise.rule("2026-12-03", "2026-12-04", NOW, NOW) is None
    assert noise.rule(True, False, NOW, NOW) is None
    # Each side is judged against its own clock: a capture's time is not the replay's.
    assert noise.rule(NOW, NOW - 90_000, NOW, NOW) is None


def test_tokens_mix_letters_and_digits_at_one_length() -> None:
    assert noise.rule("a1b2c3d4e5", "9f8e7d6c5b", NOW, NOW) == noise.TOKEN
    assert noise.rule("degraded", "maintain", NOW, NOW) is None
    assert noise.rule("12345678", "87654321", NOW, NOW) is None
    assert noise.rule("a1b2c3d4e5", "9f8e7d6c", NOW, NOW) is None
    # A hex token that came out all digits is still a token, next to one that did not.
    assert noise.rule("8349035322023624", "c349bb786fdb4b03", NOW, NOW) == noise.TOKEN
    assert noise.rule("0e77769b-84e7-4fec-9651-8d0e91352d17",
                      "1F2E3D4C-84E7-4FEC-9651-8D0E91352D17", NOW, NOW) == noise.UUID
