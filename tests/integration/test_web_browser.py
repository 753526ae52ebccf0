"""A lead signs in and approves a batch in a real headless Chromium: the sign-in URL, the page, a click, the
ledger (which records the login's name); a decision posted without the session changes nothing.

Needs Debian's ``chromium`` and ``chromium-driver`` (``bash scripts/servers/chromium.sh install``, which
``scripts/test.sh`` runs) and the ``selenium`` package. Selenium is given both paths, so Selenium Manager
never downloads a browser or a driver. Screenshots go to ``test-artifacts/`` (git-ignored) and their paths
are printed.
"""

import http.client
import os
import shutil
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from budget.controller.cli import cli
from budget.ledger import Ledger
from budget.page_logins import new_login
from budget.web import make_server
from tests.utils.projects import write_tiny_project

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1200,1000")

pytestmark = pytest.mark.integration


def _missing(what: str) -> None:
    message = f"{what}; run `bash scripts/servers/chromium.sh install` (or `bash scripts/test.sh`)."
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser():
    """A headless Chromium driven through chromedriver, with a fresh profile; quit after the test."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        _missing(f"{CHROMIUM} or {CHROMEDRIVER} is not installed")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("the selenium package is not installed (pip install -e '.[test]')")
    profile = tempfile.mkdtemp(prefix="aod-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def served_run(tmp_path):
    """A run whose first batch (30 items at $0.50) waits for a lead, served on a free loopback port: the run
    folder, the server, and the sign-in URL that ``serve`` would print for the login "Lead Tester"."""
    project = write_tiny_project(tmp_path, policy="annotate", overrides={"annotation": {"auto_approve_under": "0"}})
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, ["--spend", "40", "--config", str(project), "--run-dir", str(run_dir),
                                      "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0 and "waits for approval" in result.output, result.output
    server = make_server(run_dir, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield run_dir, server, server.login_url(new_login(run_dir, "Lead Tester"))
    server.shutdown()
    server.server_close()


def _screenshot(driver, name: str) -> Path:
    """A full-page screenshot into test-artifacts/ (the window grows to the page's height first)."""
    ARTIFACTS.mkdir(exist_ok=True)
    driver.set_window_size(1200, 700)  # measure the page, not the window left by the last screenshot
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1200, min(max(int(height) + 140, 700), 6000))
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    return path


def _decisions(run_dir: Path, batch_id: str) -> tuple[str, list]:
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        return ledger.batch(batch_id).state, ledger.approvals(batch_id)


def test_a_lead_signs_in_with_the_printed_url_and_approves_with_a_click(browser, served_run, capsys):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    run_dir, server, login_url = served_run
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (batch,) = ledger.batches("proposed")
    try:
        browser.get(server.url)  # signed out: the sign-in form, nothing of the run
        assert browser.find_elements(By.NAME, "token") and batch.batch_id not in browser.page_source
        signed_out = _screenshot(browser, "web-00-sign-in.png")

        browser.get(login_url)  # the URL serve prints: a session cookie, then the page without the token
        assert browser.current_url == server.url
        assert browser.find_element(By.CSS_SELECTOR, "[data-user]").text == "Lead Tester"
        card = browser.find_element(By.CSS_SELECTOR, f'article[data-batch="{batch.batch_id}"]')
        assert "30 items x $0.50 x 1 annotators = $15.00" in card.text
        assert browser.find_element(By.CSS_SELECTOR, '[data-money="granted"]').text == "$40.00"
        assert browser.execute_script("return document.querySelector('figure.plot img').naturalWidth") > 0
        before = _screenshot(browser, "web-01-proposal.png")

        assert not card.find_elements(By.NAME, "by")  # the name is the login's, not typed
        card.find_element(By.CSS_SELECTOR, "button.approve").click()
        flash = WebDriverWait(browser, 30).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".flash.ok")))
        assert f"Approved {batch.batch_id} ($15.00) by Lead Tester." in flash.text
        assert "No proposals wait for approval" in browser.find_element(By.TAG_NAME, "main").text
        after = _screenshot(browser, "web-02-approved.png")

        state, (approval,) = _decisions(run_dir, batch.batch_id)
        assert state == "approved" and (approval.decision, approval.by) == ("approved", "Lead Tester") and approval.at
    except Exception:
        with capsys.disabled():
            print(f"\nscreenshot of the failure: {_screenshot(browser, 'web-failure.png')}")
        raise
    with capsys.disabled():
        print(f"\nscreenshots: {signed_out} {before} {after}")


def test_a_decision_posted_without_the_session_changes_nothing(browser, served_run, capsys):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    run_dir, server, login_url = served_run
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (batch,) = ledger.batches("proposed")
    try:
        browser.get(login_url)
        card = browser.find_element(By.CSS_SELECTOR, f'article[data-batch="{batch.batch_id}"]')
        csrf = card.find_element(By.NAME, "csrf").get_attribute("value")
        host, port = server.server_address[:2]
        # the page's own form fields and Origin, everything but the browser's session cookie
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("POST", "/approve", body=urlencode({"batch_id": batch.batch_id, "csrf": csrf}),
                     headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": server.url.rstrip("/")})
        resp = conn.getresponse()
        status, body = resp.status, resp.read().decode()
        conn.close()
        assert status == 403 and "sign in first" in body and _decisions(run_dir, batch.batch_id) == ("proposed", [])

        page = browser.current_window_handle
        browser.switch_to.new_window("tab")  # signing out in another tab ends the session ...
        browser.get(server.url)
        browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
        WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.NAME, "token")))
        assert batch.batch_id not in browser.page_source
        browser.close()
        browser.switch_to.window(page)  # ... so the page still open there can no longer decide
        browser.find_element(By.CSS_SELECTOR, f'article[data-batch="{batch.batch_id}"] button.approve').click()
        WebDriverWait(browser, 30).until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "Refused: sign in"))
        assert _decisions(run_dir, batch.batch_id) == ("proposed", [])
        refused = _screenshot(browser, "web-03-refused.png")
    except Exception:
        with capsys.disabled():
            print(f"\nscreenshot of the failure: {_screenshot(browser, 'web-failure.png')}")
        raise
    with capsys.disabled():
        print(f"\nscreenshot: {refused}")
