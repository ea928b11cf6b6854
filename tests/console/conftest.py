"""Fixtures of the console suites: a real backend (Triton, Valkey, ranking, gateway from
tests/fixtures) with a 30-product slice of the demo catalog indexed, the console as a real
``python -m console`` process on a free port, and Debian's Chromium driven by Playwright.

- ``console_catalog`` (session): the demo products of six categories, written with their photos
  (copied, relative paths) into a temp folder, as a user's catalog folder would look.
- ``console_backend`` (session): ranking service + gateway with that catalog indexed.
- ``console_server`` (session): the console against that gateway; ``.url``, ``.proc``, ``.log``.
- ``start_console`` (function): factory for more console processes (other flags), stopped after the test.
- ``browser`` (session) / ``page`` (function): headless Chromium; each page's screenshot is saved
  in the test's tmp dir at teardown. Skipped, with the reason, only when no Chromium binary exists.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from homesearch.stack import free_ports
from tests.fixtures.gateway import API_KEY, _start as start_gateway
from tests.fixtures.ranking import RankingHandle, start_session_ranking

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo"
CATEGORIES = ("Wardrobe", "Chair", "Mirror", "Pendant lamp", "Armchair", "Bookcase")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """Debian's chromium binary (``HOMESEARCH_TEST_CHROMIUM`` overrides), or None."""
    for cand in (os.environ.get("HOMESEARCH_TEST_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


@pytest.fixture(scope="session")
def console_catalog(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("console-catalog")
    (out / "images").mkdir()
    lines = []
    for line in (DEMO / "catalog.jsonl").read_text(encoding="utf-8").splitlines():
        product = json.loads(line)
        if product["category"] in CATEGORIES:
            shutil.copy(DEMO / product["image"], out / product["image"])
            lines.append(json.dumps(product, ensure_ascii=False))
    (out / "catalog.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copy(DEMO / "NOTICE.md", out / "NOTICE.md")
    return out / "catalog.jsonl"


@dataclass
class Backend:
    ranking: RankingHandle
    gateway_addr: str
    api_key: str


@pytest.fixture(scope="session")
def console_backend(tmp_path_factory, triton_server, redis_url, console_catalog: Path) -> Iterator[Backend]:
    from services.ranking.ingest.cli import main as index_main

    ranking = start_session_ranking(tmp_path_factory, triton_server, redis_url, "console")
    try:
        assert index_main([str(console_catalog), "--ranking-addr", ranking.address, "--no-progress"]) == 0
        gateway = start_gateway(ranking.address)
        try:
            yield Backend(ranking, gateway.address, API_KEY)
        finally:
            gateway.stop()
    finally:
        ranking.stop()


@dataclass
class ConsoleProc:
    url: str
    proc: subprocess.Popen
    log: Path

    def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 30.0):
        """(status, headers, body) of a GET, without following redirects."""
        import http.client

        host, port = self.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})  # the path goes out exactly as given
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def launch_console(log_dir: Path, *args: str, env: dict[str, str] | None = None, wait: bool = True) -> ConsoleProc:
    port = free_ports(1)[0]
    log = log_dir / f"console-{port}.log"
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", HOMESEARCH_LOG_FORMAT="json", **(env or {}))
    with log.open("wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "console", "--addr", f"127.0.0.1:{port}", *args],
                                cwd=ROOT, env=full_env, stdout=f, stderr=subprocess.STDOUT)
    handle = ConsoleProc(f"http://127.0.0.1:{port}", proc, log)
    if wait:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"console exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(handle.url + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                handle.stop()
                pytest.fail(f"console not healthy within 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
    return handle


@pytest.fixture(scope="session")
def console_server(tmp_path_factory, console_backend: Backend, console_catalog: Path) -> Iterator[ConsoleProc]:
    logs = tmp_path_factory.mktemp("console-logs")
    handle = launch_console(logs, "--gateway", console_backend.gateway_addr, "--catalog", str(console_catalog),
                            env={"HOMESEARCH_CONSOLE_API_KEY": console_backend.api_key})
    yield handle
    handle.stop()


@pytest.fixture
def start_console(tmp_path: Path) -> Iterator:
    started: list[ConsoleProc] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True) -> ConsoleProc:
        handle = launch_console(tmp_path, *args, env=env, wait=wait)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium binary at /usr/bin/chromium (apt-get install chromium; .ci/run does): "
                    "browser tests need Debian's chromium, Playwright's own browser download is not used")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, console_server: ConsoleProc, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.set_default_timeout(60_000)
    pg.goto(console_server.url + "/")
    try:
        yield pg
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        pg.screenshot(path=str(tmp_path / f"{request.node.name}.png"), full_page=True)
        context.close()
