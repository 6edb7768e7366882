"""`sio-sniffer decode` as a user runs it: a child process reading arguments, pipes, terminals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

BODY = '0{"sid":"x"}\x1e42["a",1]'


def _decode(*args: str, stdin: Any = None, text: str | None = None
            ) -> tuple[int, list[dict[str, Any]], str]:
    proc = subprocess.run([sys.executable, "-m", "sio_sniffer", "decode", *args],
                          input=text, stdin=stdin, capture_output=True, text=True, timeout=20,
                          check=False)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def test_a_piped_polling_body_is_one_body_tagged_polling() -> None:
    """No MESSAGE and a pipe on stdin: it is read, and a \\x1e-joined body is decoded as the
    polling body it is (not split into WebSocket messages at the separator)."""
    rc, out, err = _decode(text=BODY + "\n")
    assert (rc, err) == (0, "")
    assert [(o["transport"], o["eio_type"], o.get("event")) for o in out] == [
        ("polling", "OPEN", None), ("polling", "MESSAGE", "a")]
    assert out[1]["args"] == [1]


def test_piped_lines_are_messages_in_order() -> None:
    rc, out, _ = _decode(text='42["one"]\r\n\n42["two"]\n')
    assert rc == 0
    assert [(o["transport"], o["event"]) for o in out] == [("websocket", "one"),
                                                           ("websocket", "two")]


def test_dash_reads_stdin_where_it_stands_among_the_messages() -> None:
    rc, out, _ = _decode('42["first"]', "-", '42["last"]', text='42["middle"]\n')
    assert rc == 0
    assert [o["event"] for o in out] == ["first", "middle", "last"]


def test_dash_with_polling_takes_stdin_as_one_body() -> None:
    rc, out, _ = _decode("--polling", "-", text='42["a"]\x1e42["b"]\n')
    assert rc == 0
    assert [(o["transport"], o["event"]) for o in out] == [("polling", "a"), ("polling", "b")]


def test_a_message_argument_does_not_wait_for_stdin() -> None:
    """Given MESSAGE arguments, a pipe on stdin is not read (it is never closed here)."""
    read, write = os.pipe()
    try:
        rc, out, _ = _decode('42["arg"]', stdin=read)
    finally:
        os.close(read)
        os.close(write)
    assert rc == 0 and [o["event"] for o in out] == ["arg"]


def test_no_input_on_a_terminal_says_what_to_give_and_exits_2() -> None:
    """Stdin a terminal (a pty) and no MESSAGE: a one-sentence message, exit 2, no waiting."""
    primary, secondary = os.openpty()
    try:
        rc, out, err = _decode(stdin=secondary)
    finally:
        os.close(secondary)
        os.close(primary)
    assert (rc, out) == (2, [])
    assert err.strip() == ("sio-sniffer decode: no input: give MESSAGE arguments, -f FILE, or "
                           "pipe the frames in ('... | sio-sniffer decode')")


def test_an_empty_pipe_is_no_input() -> None:
    rc, out, err = _decode(text="")
    assert (rc, out) == (2, [])
    assert "no input" in err
