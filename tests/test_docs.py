"""The README documents every record kind and every flag the code can produce."""

from __future__ import annotations

from pathlib import Path

from sio_sniffer import model
from sio_sniffer.model.flags import KINDS

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_flag_kind_is_documented() -> None:
    """Each flag kind the analysis raises has a row in the README's flag table."""
    assert [kind for kind in KINDS if f"`{kind}`" not in README] == []


def test_every_record_kind_is_documented() -> None:
    """Each record kind in sio_sniffer.model appears in the README's log schema."""
    kinds = [value for name, value in vars(model).items()
             if name.isupper() and isinstance(value, str) and name != "SECRET_NAME"]
    assert len(kinds) > 20
    assert [kind for kind in kinds if f"`{kind}`" not in README] == []
