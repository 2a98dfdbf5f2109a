"""The app end to end in a real browser: a tiny training run, ``vlm-dpo app`` serving it on a free local port
in its own process, headless Chromium (Debian's ``chromium`` package) driven by Playwright. Bad upload, ask,
judge, browse; every request the page makes stays on this machine; the server then stops cleanly."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import free_port, port_open

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium: apt-get install -y chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright's Python package: pip install playwright")




def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True



def start_app(run: Path, port: int, log: Path) -> subprocess.Popen:
    """The app in its own process group (so that the test can tell that nothing of it is left), once it listens."""
    command = [sys.executable, "-c", "import sys; from vlm_dpo.cli import main; sys.exit(main(['app', *sys.argv[1:]]))",
               "--adapter", str(run), "--port", str(port), "--max_new_tokens", "8"]
    server = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ), stdout=log.open("w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    deadline = time.monotonic() + 180
    while not port_open(port):
        assert server.poll() is None, f"the app exited with {server.returncode}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"the app did not listen within 180 s:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    return server


def text_appears(page, selector: str, text: str, timeout_ms: int = 120_000) -> str:
    """Wait until the element's text contains ``text``; returns the text."""
    page.wait_for_function("([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
                           arg=[selector, text], timeout=timeout_ms)
    return page.inner_text(selector)


def use_app(page, url: str, tmp_path: Path) -> None:
    page.goto(url)
    page.wait_for_selector("#ask-button")

    # Bad input: a message in the panel, and the page goes on serving.
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    page.set_input_files("#ask-upload input[type=file]", str(fake))
    text_appears(page, "#ask-status", "not an image Pillow can decode")

    image = tmp_path / "red.png"
    Image.new("RGB", (80, 60), "red").save(image)
    page.set_input_files("#ask-upload input[type=file]", str(image))
    page.wait_for_selector("#ask-preview img")
    page.fill("#ask-question textarea", "What color is the circle?")
    page.click("#ask-button")
    status = text_appears(page, "#ask-status", "tuned:")
    assert "base:" in status
    for model in ("base", "tuned"):
        answer = page.input_value(f"#ask-{model} textarea")
        assert answer and not answer.startswith("("), (model, answer)
    page.screenshot(path=str(tmp_path / "ask.png"), full_page=True)

    page.get_by_role("tab", name="Judge a pair").click()
    page.click("#judge-heldout input")
    page.locator("#judge-heldout li[role=option]").nth(2).click()
    page.wait_for_function("() => document.querySelector('#judge-chosen textarea').value.length > 0")
    page.click("#judge-button")
    text_appears(page, "#judge-status", "Rewards are beta")
    assert page.inner_text("#judge-table [data-testid=cell-1-0]").strip() == "tuned"
    rewards = [float(page.inner_text(f"#judge-table [data-testid=cell-1-{col}]")) for col in (4, 5)]
    assert len(rewards) == 2  # reward of the chosen and of the rejected answer, both numbers

    page.get_by_role("tab", name="Held-out report").click()
    page.click("#report-table [data-testid=cell-1-6]")
    text_appears(page, "#report-detail", "Pair 1")
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)


def test_the_app_in_a_browser(tiny_run, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = start_app(tiny_run, port, tmp_path / "server.log")
    requests = []
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS,
                viewport={"width": 1400, "height": 1000})
            browser.on("request", lambda request: requests.append(request.url))
            try:
                use_app(browser.pages[0] if browser.pages else browser.new_page(), url, tmp_path)
            finally:
                browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        returncode = server.wait(timeout=60)
    log = (tmp_path / "server.log").read_text()
    assert returncode == 0, log[-3000:]
    assert "Traceback" not in log  # the bad upload was handled, not crashed through
    assert not port_open(port)
    assert not group_alive(server.pid)  # nothing of the app's process group is left
    remote = [u for u in requests if not u.startswith((url, "data:", "blob:"))]
    assert requests and remote == []
    assert (tmp_path / "ask.png").stat().st_size > 10_000
