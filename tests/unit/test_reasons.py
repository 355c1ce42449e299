"""The README's list of codes (rejection reasons, order failure reasons, the other errors'
codes) is `Reason`, member for member: a code added to one and not the other fails here."""

from __future__ import annotations

import re
from pathlib import Path

from order_processor.exceptions import Reason

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_codes() -> list[str]:
    text = README.read_text()
    start = text.index("Rejection reasons:")
    end = text.index("Denied commands are also written", start)
    return re.findall(r"`([A-Z][A-Z_]+)`", text[start:end])


def test_every_code_the_readme_lists_is_a_reason() -> None:
    assert [code for code in readme_codes() if code not in set(Reason)] == []


def test_every_reason_is_in_the_readme() -> None:
    listed = set(readme_codes())
    assert [reason.value for reason in Reason if reason not in listed] == []
