"""The report in a real browser: headless Chromium renders the matrix, the cards and the filters.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON
messages ended by NUL on file descriptors 3 and 4), so no driver package is needed. Install the
browser with ``.ci/install-browser``. Without it the test skips, except under CI (``CI`` set),
where a missing browser is a failure. It saves ``reports/screenshot.png``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conformance.report import render
from tests.results_fixtures import BROKEN_RULE, PASSING_RULE, ROOT, broken_backend, made_up_doc, run_suite

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOT = ROOT / "reports" / "screenshot.png"


class Chromium:
    """A headless Chromium and one page in it, commanded over the DevTools pipe."""

    def __init__(self, binary: str, profile: Path) -> None:
        commands, self._theirs_in = os.pipe()
        self._theirs_out, replies = os.pipe()
        # above 9, so that moving them onto 3 and 4 cannot overwrite one with the other (hence bash, not sh)
        commands, replies = (_above(fd, 10) for fd in (commands, replies))
        shell = f'exec "$0" "$@" 3<&{commands} 4>&{replies}'
        argv = ["bash", "-c", shell, binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe"]
        self.process = subprocess.Popen(
            argv, pass_fds=(commands, replies), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        os.close(commands)
        os.close(replies)
        self._buffer, self._id = b"", 0
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._theirs_in, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply["result"]

    def _receive(self, timeout: float = 60) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._theirs_out], [], [], timeout)
            chunk = os.read(self._theirs_out, 1 << 20) if ready else b""
            assert chunk, "chromium stopped answering"
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        return self.send(method, self.session, **params)

    def js(self, expression: str) -> Any:
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.page("Page.navigate", url=url)
        for _ in range(200):
            if self.js("document.readyState") == "complete" and self.js("document.getElementById('shown') !== null"):
                return
            select.select([], [], [], 0.05)
        raise AssertionError(f"{url} did not load")

    def screenshot(self, path: Path, width: int = 1400, max_height: int = 2400) -> None:
        metrics = {"width": width, "deviceScaleFactor": 1, "mobile": False}
        self.page("Emulation.setDeviceMetricsOverride", height=800, **metrics)
        height = min(self.js("document.documentElement.scrollHeight"), max_height)
        self.page("Emulation.setDeviceMetricsOverride", height=height, **metrics)
        data = self.page("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.send("Browser.close")
        self.process.wait(timeout=30)
        os.close(self._theirs_in)
        os.close(self._theirs_out)


def _above(fd: int, lowest: int) -> int:
    """``fd`` moved to a descriptor number >= ``lowest``."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, lowest)
    os.close(fd)
    return moved


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if "CI" in os.environ:
            pytest.fail("chromium is missing under CI: run .ci/install-browser")
        pytest.skip("chromium is not installed (run .ci/install-browser)")
    chromium = Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """The report of two real runs: torch, and a broken adapter, on two rules."""
    tmp = tmp_path_factory.mktemp("report")
    docs = [run_suite(tmp, backend)[2] for backend in ("torch", broken_backend())]
    path = tmp / "index.html"
    render.write(path, docs)
    return path, docs


VISIBLE_ROWS = "[...document.querySelectorAll('tr.rule-row:not(.filtered)')].map(r => r.id.slice(5))"
VISIBLE_CELLS = "[...document.querySelectorAll('tr.rule-row:not(.filtered) td.cell:not(.filtered)')].map(c => c.dataset.engine + c.dataset.status)"


def _choose(browser: Chromium, name: str, value: str) -> None:
    """Pick a filter as a user does: set the select and fire its change event."""
    browser.js(
        f"{{ const s = document.querySelector('#filters [name={name}]'); s.value = {json.dumps(value)};"
        "s.dispatchEvent(new Event('change', {bubbles: true})); }"
    )


def test_report_renders_and_filters_in_chromium(browser: Chromium, report: tuple[Path, list[dict]]) -> None:
    path, docs = report
    browser.open(path.as_uri())

    # the matrix: two rules x (torch, broken) x (float32, float64)
    assert sorted(browser.js(VISIBLE_ROWS)) == sorted([BROKEN_RULE, PASSING_RULE])
    assert sorted(browser.js(VISIBLE_CELLS)) == sorted(["0passed"] * 4 + ["1passed"] * 2 + ["1failed"] * 2)
    assert browser.js("document.getElementById('shown').textContent") == "2 of 2 rules shown, 1 triage cards"

    # a failure card, its script, and its copy button
    card = (
        f"document.getElementById('card-' + {json.dumps(docs[1]['results'][0]['failure']['kind'])} + '-{BROKEN_RULE}')"
    )
    assert browser.js(f"{card}.querySelectorAll('.entry').length") == 2
    assert BROKEN_RULE in browser.js(f"{card}.innerText")
    parts = next(r["failure"]["repro"] for r in docs[1]["results"] if r["failure"])
    repro = parts["head"] + docs[1]["repro_library"] + parts["script"]
    browser.js(f"{card}.querySelector('button.copy').click()")
    copied = browser.js(
        f"new Promise(r => setTimeout(() => r({card}.querySelector('button.copy').dataset.copied), 200))"
    )
    assert int(copied) == len(repro.encode("utf-16-le")) // 2, "the copy button copies the whole standalone repro"

    # the filters: by status, by backend, by area, and their state in the URL
    _choose(browser, "status", "failed")
    assert browser.js(VISIBLE_ROWS) == [BROKEN_RULE]
    _choose(browser, "backend", "0")
    assert (
        browser.js(VISIBLE_ROWS) == []
        and browser.js("document.querySelectorAll('article.card:not(.filtered)').length") == 0
    )
    _choose(browser, "status", "")
    assert sorted(browser.js(VISIBLE_CELLS)) == ["0passed"] * 4
    assert browser.js("location.hash") == "#backend=0"
    browser.js("location.hash = '#status=failed&backend=1'; new Promise(r => setTimeout(r, 100))")
    assert browser.js("document.querySelector('#filters [name=status]').value") == "failed"
    assert sorted(browser.js(VISIBLE_CELLS)) == ["1failed"] * 2

    browser.open(path.as_uri())
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.screenshot(SCREENSHOT)
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_area_filter_in_chromium(browser: Chromium, tmp_path: Path) -> None:
    statuses = {("one.a", "float32"): "passed", ("one.b", "float32"): "failed", ("two.c", "float32"): "error"}
    path = tmp_path / "index.html"
    render.write(path, [made_up_doc("engine", statuses)])
    browser.open(path.as_uri() + "#area=two")
    assert browser.js(VISIBLE_ROWS) == ["two.c"]
    assert browser.js("[...document.querySelectorAll('#areas tbody tr:not(.filtered)')].map(r => r.dataset.area)") == [
        "two",
        "",
    ]
    assert browser.js("[...document.querySelectorAll('article.card:not(.filtered)')].map(c => c.id)") == [
        "card-error-two.c"
    ]
