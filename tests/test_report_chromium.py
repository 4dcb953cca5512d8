"""Acceptance: the report's images render in headless Chromium (Debian's `chromium`).

One screenshot of the page must not be blank (pixel spread), and a DOM dump taken after the page loaded
must show every <img> decoded (naturalWidth > 0). Skips cleanly when chromium is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from advgame.cli import main

FIX = Path(__file__).parent / "fixtures" / "eval"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--no-first-run",
    "--virtual-time-budget=5000",
]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def page(tmp_path) -> Path:
    out = tmp_path / "report.html"
    assert main(["report", str(FIX / "report_run"), str(FIX / "results"), "-o", str(out)]) == 0
    return out


def test_screenshot_is_not_blank(page, tmp_path):
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri())
    assert shot.is_file(), "chromium wrote no screenshot"
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    assert float(pixels.std()) > 0.05  # a blank page is one flat colour
    dark = (pixels.mean(axis=-1) < 0.5).mean()
    assert dark > 0.005  # text and plot lines, not just a white page


def test_every_image_decodes(page, tmp_path):
    probe = tmp_path / "probe.html"
    script = (
        "<script>window.addEventListener('load',()=>{document.body.setAttribute('data-widths',"
        "Array.from(document.images).map(i=>i.complete?i.naturalWidth:-1).join(','))});</script>"
    )
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    dom = chromium(tmp_path, "--dump-dom", probe.as_uri()).stdout
    match = re.search(r'data-widths="([^"]*)"', dom)
    assert match, "the page did not finish loading in chromium"
    widths = [int(w) for w in match.group(1).split(",")]
    assert len(widths) == 3 and all(w > 100 for w in widths)
    # the probe can fail: a broken image decodes to width 0
    broken = tmp_path / "broken.html"
    broken.write_text(probe.read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    dom = chromium(tmp_path, "--dump-dom", broken.as_uri()).stdout
    widths = [int(w) for w in re.search(r'data-widths="([^"]*)"', dom).group(1).split(",")]
    assert widths[0] == 0 and all(w > 100 for w in widths[1:])
    assert np.all(np.array(widths[1:]) > 0)
