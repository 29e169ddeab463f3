"""The HTML report in a real headless browser (Debian's chromium, driven by selenium through
chromedriver): it loads with no console error and no request leaving the page, its charts
draw (checked on the screenshot's pixels) and zoom by dragging.

CI installs the browser (`.ci/run`: apt-get install chromium chromium-driver)."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import trio
from matplotlib import image as mpimg
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from runtime import Live, Sim, start, stop, strategy
from runtime.app._report import report_from_trace
from runtime.testing.loopback import LoopbackExchange
from tests.conftest import HERE

UPDOWN = HERE / "three_modes_strategy.py"


def _find(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    raise AssertionError(
        f"none of {', '.join(names)} is installed: run `apt-get install chromium "
        "chromium-driver` (.ci/run does)"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1700,2400"):
        options.add_argument(arg)
    options.binary_location = _find("chromium", "chromium-browser")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver from the Debian package, matched to the browser: nothing is downloaded.
    driver = webdriver.Chrome(service=Service(_find("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _colour_share(pixels: np.ndarray, hex_colour: str, tol: float = 0.08) -> float:
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return float(np.mean(np.all(np.abs(pixels[..., :3] - rgb) < tol, axis=-1)))


def check_page(driver: webdriver.Chrome, page: Path, markets: int, tmp_path: Path) -> None:
    driver.get_log("browser")  # start from a clean console
    driver.get(page.as_uri())
    # Plotly draws synchronously on load: the SVG and its traces are there.
    traces = driver.execute_script(
        "return document.querySelectorAll('#charts .scatterlayer .trace').length"
    )
    assert traces == 3 + 3 * markets  # equity, buy and hold, drawdown; close, buys, sells
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == [], errors
    # Self-contained: the page fetched nothing besides itself.
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert driver.find_element(By.ID, "stats").is_displayed()
    rows = driver.find_elements(By.CSS_SELECTOR, "#trades tbody tr")
    assert len(rows) >= 1

    charts = driver.find_element(By.ID, "charts")
    driver.execute_script("arguments[0].scrollIntoView()", charts)
    shot = mpimg.imread(io.BytesIO(charts.screenshot_as_png), format="png")
    (tmp_path / f"{page.stem}-charts.png").write_bytes(charts.screenshot_as_png)
    assert shot.shape[0] > 500
    assert shot.shape[1] > 1000
    # Not blank: the lines, fills and markers cover a real share of the picture.
    not_white = float(np.mean(np.any(shot[..., :3] < 0.9, axis=-1)))
    assert not_white > 0.02, not_white
    assert _colour_share(shot, "#2166ac") > 0.0005  # the equity line
    assert _colour_share(shot, "#d73027", tol=0.15) > 0.0001  # drawdown and sell markers
    assert _colour_share(shot, "#1a9850", tol=0.15) > 0.00005  # buy markers

    # Zoom by dragging across the equity panel: the shared time axis narrows.
    before = driver.execute_script(
        "return document.getElementById('charts').layout.xaxis.range.slice()"
    )
    drag = driver.find_element(By.CSS_SELECTOR, "#charts .nsewdrag")
    width = drag.size["width"]
    ActionChains(driver).move_to_element_with_offset(
        drag, -width // 4, 0
    ).click_and_hold().move_by_offset(width // 3, 0).release().perform()
    after = driver.execute_script(
        "return document.getElementById('charts').layout.xaxis.range.slice()"
    )
    assert after != before
    assert driver.get_log("browser") == []


async def test_sim_report_page_in_a_browser(browser: webdriver.Chrome, tmp_path: Path) -> None:
    s = strategy("sma_cross", mode=Sim(bars=3000, seed=1), config={"trace_root": str(tmp_path)})
    await start(s)
    assert s.trace_path is not None
    page = report_from_trace(s.trace_path).to_html(tmp_path / "sim.html")
    check_page(browser, page, markets=2, tmp_path=tmp_path)


async def test_live_report_page_in_a_browser(
    browser: webdriver.Chrome, running_market: LoopbackExchange, tmp_path: Path
) -> None:
    live = strategy(UPDOWN, mode=Live(), sandbox=False, config={"trace_root": str(tmp_path)})
    async with trio.open_nursery() as nursery:
        await nursery.start(start, live)
        with trio.fail_after(30):
            while len(live.decisions) < 6:  # noqa: ASYNC110 (ticks follow the wall clock)
                await trio.sleep(0.1)
        await stop(live)
    assert live.trace_path is not None
    report = report_from_trace(live.trace_path)
    assert report.mode == "live"
    page = report.to_html(tmp_path / "live.html")
    png = report.to_png(tmp_path / "live.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    check_page(browser, page, markets=1, tmp_path=tmp_path)
