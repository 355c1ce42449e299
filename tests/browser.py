"""Headless Chromium (the Debian package, `make browser`) as the tests' browser: one page
load per call, with a fresh profile. Also `python -m tests.browser URL FILE`: a screenshot
(the README's `docs/dashboard.png`).

Without the background-networking flags Chromium waits on the network for updates and
field trials, and on a closed network it hangs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Virtual time runs the page's scripts (the first fetch of the snapshot and its rendering)
# before the DOM is dumped, without waiting for them in real time.
VIRTUAL_TIME_MS = 5000


def chromium(*arguments: str, timeout: float = 60) -> str:
    executable = shutil.which("chromium")
    if executable is None:
        raise RuntimeError("chromium is not installed: run `make browser`")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        result = subprocess.run(
            [executable, *FLAGS, f"--user-data-dir={profile}", *arguments],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    return result.stdout


def dump_dom(url: str) -> str:
    """The page's DOM after its scripts ran."""
    return chromium(f"--virtual-time-budget={VIRTUAL_TIME_MS}", "--dump-dom", url)


def screenshot(url: str, path: Path, width: int = 1400, height: int = 1500) -> None:
    chromium(
        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
        f"--window-size={width},{height}",
        f"--screenshot={path.resolve()}",
        url,
    )


class ShownById(HTMLParser):
    """The text of every element with a `data-testid`, by that id."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []  # (tag, testid) of open elements

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        testid = dict(attrs).get("data-testid")
        if testid is not None:
            self.found[testid] = ""
        self._open.append((tag, testid))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            opened, _ = self._open.pop()
            if opened == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, testid in self._open:
            if testid is not None:
                self.found[testid] += data


def shown_values(dom: str) -> dict[str, str]:
    parser = ShownById()
    parser.feed(dom)
    return {key: text.strip() for key, text in parser.found.items()}


if __name__ == "__main__":
    screenshot(sys.argv[1], Path(sys.argv[2]))
