"""Open the report in a real headless Chromium: every section renders, every image decodes, and the
console shows no error. Skips only where no chromium binary exists."""

import re
import shutil
import subprocess
import tempfile

import pytest
from _build import SOURCE, hand_result

from circuitdsl.compiler import compile_source
from circuitdsl.report import SECTIONS, write_html

pytestmark = pytest.mark.browser

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def _chromium(url: str, *extra: str) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *extra, url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip


def _page(tmp_path, with_model: bool):
    h = compile_source(SOURCE, "tests/report/tiny_test.circuit").hypothesis
    extras = None
    if with_model:
        torch = pytest.importorskip("torch")
        torch.set_num_threads(1)
        from circuitdsl.report import compute_extras

        extras = compute_extras(h, hand_result(), n_attention=1, n_dla=16)
    out = tmp_path / ("full.html" if with_model else "json_only.html")
    write_html(
        out,
        hand_result(),
        source_text=None if with_model else SOURCE,
        hypothesis=h if with_model else None,
        extras=extras,
    )
    return out


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line and ("Uncaught" in line or "rror" in line)]


@pytest.mark.parametrize("with_model", [False, True], ids=["json-only", "with-model"])
def test_page_renders_in_chromium(tmp_path, with_model):
    page = _page(tmp_path, with_model)
    proc = _chromium(page.as_uri(), "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", proc.stdout).group(1)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body))
    assert attrs.get("data-rendered") == "ok", attrs
    assert "data-errors" not in attrs
    assert attrs["data-sections"] == str(len(SECTIONS))
    n_img = 2 if with_model else 1  # histogram (+ DLA chart)
    assert attrs["data-images"] == f"{n_img}/{n_img}"
    assert int(attrs["data-svgs"]) >= (2 + 6 if with_model else 0)
    assert _console_errors(proc.stderr) == []


def test_screenshot_is_written(tmp_path):
    page = _page(tmp_path, False)
    shot = tmp_path / "shot.png"
    proc = _chromium(page.as_uri(), f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert _console_errors(proc.stderr) == []
