"""The sensors notebook in a real browser: JupyterLab on localhost, headless
Chromium (Debian's), Run All, and a screenshot whose chart has points on it."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "sensors.ipynb"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
POINTS = ".js-plotly-plot .scatterlayer .trace path.point"

pytestmark = [
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason="no chromium here (Debian: apt-get install chromium)",
    ),
    pytest.mark.timeout(240),
]


@pytest.fixture
def jupyter_lab(tmp_path: Path):
    pytest.importorskip("jupyterlab")
    work = tmp_path / "work"
    work.mkdir()
    # Watch longer than the notebook's own few seconds, so the page has time to
    # load and then sees the chart move while readings still arrive.
    text = NOTEBOOK.read_text()
    assert "RUN_FOR = 6.0" in text
    (work / NOTEBOOK.name).write_text(text.replace("RUN_FOR = 6.0", "RUN_FOR = 20.0"))
    config = tmp_path / "config"
    config.mkdir()
    # No news feed or extension index lookups: the page talks to localhost only.
    (config / "jupyter_server_config.py").write_text(
        'c.LabApp.news_url = None\nc.LabApp.extension_manager = "readonly"\n'
    )
    (config / "labconfig").mkdir()
    (config / "labconfig" / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}'
    )
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }
    log = (tmp_path / "jupyter.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
            "--LabApp.expose_app_in_browser=True", "--ServerApp.allow_root=True",
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "jupyter.log").read_text()
                assert time.monotonic() < deadline, "JupyterLab did not start in 60 s"
                time.sleep(0.5)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_sensors_notebook_draws_points_in_a_browser(jupyter_lab, tmp_path: Path):
    sync_api = pytest.importorskip("playwright.sync_api")
    base, token = jupyter_lab
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user data dir
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            browser.route(lambda url: not url.startswith(base), lambda route: route.abort())
            page = browser.new_page()
            page.goto(f"{base}/lab/tree/sensors.ipynb?token={token}")
            page.wait_for_function("() => window.jupyterapp !== undefined", timeout=60_000)
            page.evaluate(
                """async () => {
                    const app = window.jupyterapp;
                    await app.restored;
                    let panel = app.shell.currentWidget;
                    for (let i = 0; i < 100 && !(panel && panel.sessionContext); i++) {
                        await new Promise(r => setTimeout(r, 200));
                        panel = app.shell.currentWidget;
                    }
                    await panel.sessionContext.ready;
                    app.commands.execute('notebook:run-all-cells');  // resolves only at the end
                }"""
            )
            # While the device sends: both traces fill up to their last 12 points.
            page.wait_for_function(
                f"() => document.querySelectorAll('{POINTS}').length >= 20", timeout=90_000
            )
            plot = page.locator(".js-plotly-plot").first
            plot.scroll_into_view_if_needed()
            ticks = (
                "() => [...document.querySelectorAll('.js-plotly-plot .xtick text')]"
                ".map(t => t.textContent).join()"
            )
            before = page.evaluate(ticks)
            time.sleep(1.5)
            page.screenshot(path=str(tmp_path / "sensors-running.png"))
            during = page.evaluate(ticks)
            page.locator(".jp-OutputArea-output pre", has_text="everything stopped").wait_for(
                timeout=90_000
            )
            plot.scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / "sensors.png"))
            svg = page.evaluate(
                """(sel) => ({
                    traces: document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length,
                    points: document.querySelectorAll(sel).length,
                    lines: [...document.querySelectorAll('.js-plotly-plot .scatterlayer .js-line')]
                        .map(p => (p.getAttribute('d') || '').length),
                    fills: document.querySelectorAll('.js-plotly-plot .scatterlayer .js-fill').length,
                    title: document.querySelector('.js-plotly-plot .gtitle')?.textContent,
                })""",
                POINTS,
            )
        finally:
            browser.close()
    assert before != during, "the time axis did not move while readings arrived"
    assert svg["traces"] == 2, svg
    assert svg["points"] == 24, svg  # the last 12 readings of temp1 and temp2
    assert len(svg["lines"]) == 2 and min(svg["lines"]) > 20, svg
    assert svg["fills"] == 2, svg
    assert svg["title"] == "Temperatures, last 12 readings", svg
    png = (tmp_path / "sensors.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
