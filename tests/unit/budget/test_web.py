"""The leads' web page: money, pending proposals, Approve / Reject, served on loopback only."""

import http.client
import shutil
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import jinja2
import pytest
from click.testing import CliRunner
from markupsafe import escape

from budget.cli import cli
from budget.ledger import Ledger
from budget.money import format_usd
from budget.report import templates
from budget.round_records import BatchPayload
from budget.web import is_loopback, make_server
from tests.utils.projects import write_tiny_project


@pytest.fixture(scope="module")
def template_run(tmp_path_factory) -> Path:
    """A run folder whose first annotation batch (30 items at $0.50) waits for a lead; built once, copied per test."""
    root = tmp_path_factory.mktemp("web")
    project = write_tiny_project(root, models_dir=root / "models", policy="annotate",
                                 overrides={"annotation": {"auto_approve_under": "0"}})
    result = CliRunner().invoke(cli, ["--spend", "40", "--config", str(project), "--run-dir", str(root / "run"),
                                      "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0 and "waits for approval" in result.output, result.output
    return root / "run"


@pytest.fixture
def run_dir(template_run, tmp_path) -> Path:
    return Path(shutil.copytree(template_run, tmp_path / "run"))


@pytest.fixture
def server(run_dir):
    srv = make_server(run_dir, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def request(srv, method: str, path: str, fields: dict | None = None, headers: dict | None = None):
    """One request, redirects not followed: (status, headers, body text)."""
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=30)
    body = urlencode(fields) if fields is not None else None
    hdrs = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    conn.request(method, path, body=body, headers={**hdrs, **(headers or {})})
    resp = conn.getresponse()
    out = resp.status, dict(resp.getheaders()), resp.read()
    conn.close()
    return out[0], out[1], out[2].decode("utf-8", "replace") if method == "POST" or path != "/plot.png" else out[2]


def flash(location: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(location).query).items()}


def pending(run_dir: Path):
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (batch,) = ledger.batches("proposed")
        return batch, ledger.totals()


def test_page_shows_money_the_proposal_its_price_sample_and_plot(server, run_dir):
    batch, totals = pending(run_dir)
    (run_dir / "report" / "score_vs_dollars.png").unlink()  # the page writes the report when the plot is missing
    status, headers, page = request(server, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert batch.batch_id in page and "30 items x $0.50 x 1 annotators = $15.00" in page
    assert "$40.00 before, $25.00 after" in page and "annotate-only policy" in page
    assert totals.granted == 40_000_000 and totals.reserved >= batch.total_micro
    for label in ("granted", "reserved", "spent", "available"):
        assert f'data-money="{label}">{format_usd(getattr(totals, label))}<' in page
    assert all(str(escape(text)) in page for text in batch.payload.sample)
    assert 'formaction="/approve"' in page and 'formaction="/reject"' in page
    assert '<img src="/plot.png?v=' in page and (run_dir / "report" / "score_vs_dollars.png").exists()
    status, headers, png = request(server, "GET", "/plot.png")
    assert status == 200 and headers["Content-Type"] == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_approve_records_who_and_when_and_a_second_approval_changes_nothing(server, run_dir):
    batch, before = pending(run_dir)
    status, headers, _ = request(server, "POST", "/approve", {"batch_id": batch.batch_id, "by": "alice"})
    assert status == 303
    msg = flash(headers["Location"])
    assert msg["kind"] == "ok" and msg["msg"].startswith(f"Approved {batch.batch_id} ($15.00) by alice.")
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (approval,) = ledger.approvals(batch.batch_id)
        assert (approval.decision, approval.by) == ("approved", "alice") and approval.at
        assert ledger.batch(batch.batch_id).state == "approved" and ledger.totals() == before
    _, _, page = request(server, "GET", headers["Location"])
    assert "No proposals wait for approval" in page and f"Approved {batch.batch_id}" in page
    assert ">alice<" in page and 'value="alice"' not in page.split("Recent decisions")[1]  # listed, no form left

    status, headers, _ = request(server, "POST", "/approve", {"batch_id": batch.batch_id, "by": "bob"})
    msg = flash(headers["Location"])
    assert status == 303 and msg["kind"] == "note" and "already approved; nothing changed" in msg["msg"]
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        assert [a.by for a in ledger.approvals(batch.batch_id)] == ["alice"]
        assert ledger.totals() == before


def test_reject_needs_a_reason_and_releases_the_money(server, run_dir):
    batch, before = pending(run_dir)
    _, headers, _ = request(server, "POST", "/reject", {"batch_id": batch.batch_id, "by": "carol", "why": " "})
    assert flash(headers["Location"])["kind"] == "error" and "Give a reason" in flash(headers["Location"])["msg"]
    assert pending(run_dir)[1] == before
    _, headers, _ = request(server, "POST", "/reject", {"batch_id": batch.batch_id, "by": "carol",
                                                        "why": "off-topic items"})
    assert "Its $15.00 is released." in flash(headers["Location"])["msg"]
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        after = ledger.totals()
        (decision,) = ledger.approvals(batch.batch_id)
    assert after.reserved == 0 and after.available - before.available == before.reserved >= batch.total_micro
    assert (decision.decision, decision.by, decision.why) == ("rejected", "carol", "off-topic items")
    _, headers, _ = request(server, "POST", "/approve", {"batch_id": batch.batch_id, "by": "dan"})
    assert flash(headers["Location"])["kind"] == "error" and "already rejected" in flash(headers["Location"])["msg"]


def test_bad_forms_are_refused_with_a_message(server, run_dir):
    batch, before = pending(run_dir)
    _, headers, _ = request(server, "POST", "/approve", {"batch_id": batch.batch_id, "by": ""})
    assert "Type your name" in flash(headers["Location"])["msg"]
    _, headers, _ = request(server, "POST", "/approve", {"batch_id": "nope", "by": "alice"})
    msg = flash(headers["Location"])
    assert msg["kind"] == "error" and "Batch 'nope' not found" in msg["msg"]
    assert pending(run_dir)[1] == before
    assert request(server, "GET", "/approve")[0] == 405 and request(server, "GET", "/nothing")[0] == 404


def test_every_value_shown_is_escaped(server, run_dir):
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        ledger.add_batch("evil-batch", round=9, reservation_id=None, price_per_item_micro=500_000, overlap=1,
                         total_micro=1_000_000, payload=BatchPayload(
                             item_ids=(1, 2), why='a "why" with <b>tags</b> & more', available_before_micro=0,
                             available_after_micro=0,
                             sample=("<script>alert('x')</script>", ("an item", "<script>label</script>"))))
    _, _, page = request(server, "GET", "/?" + urlencode({"msg": "<img src=x onerror=alert(1)>", "by": '"><script>'}))
    assert "<script" not in page and "<b>tags" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "an item / &lt;script&gt;label&lt;/script&gt;" in page  # a sample item with its label
    assert "a &#34;why&#34; with &lt;b&gt;tags&lt;/b&gt; &amp; more" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and 'value="&#34;&gt;&lt;script&gt;"' in page


def test_an_unknown_message_kind_is_shown_as_a_note(server):
    _, _, page = request(server, "GET", "/?" + urlencode({"msg": "hello", "kind": 'x" onclick="alert(1)'}))
    assert '<div class="flash note" role="status">hello</div>' in page and "onclick" not in page


def test_a_decision_appears_under_recent_decisions_escaped(server, run_dir):
    batch, _ = pending(run_dir)
    _, _, page = request(server, "GET", "/")
    assert "No decisions yet." in page
    _, headers, _ = request(server, "POST", "/reject", {"batch_id": batch.batch_id, "by": "<script>eve</script>",
                                                        "why": "dup <items> & more"})
    _, _, page = request(server, "GET", "/")
    decisions = page.split("Recent decisions")[1]
    assert f"<code>{batch.batch_id}</code>" in decisions and ">$15.00<" in decisions
    assert "&lt;script&gt;eve&lt;/script&gt;" in decisions and "dup &lt;items&gt; &amp; more" in decisions
    assert "<script" not in page


def test_the_page_template_refuses_a_missing_value():
    with pytest.raises(jinja2.UndefinedError):
        templates().get_template("page.html").render()


def test_only_our_own_loopback_address_may_ask(server, run_dir):
    batch, _ = pending(run_dir)
    status, _, _ = request(server, "POST", "/approve", {"batch_id": batch.batch_id, "by": "mallory"},
                           headers={"Origin": "http://evil.example"})
    assert status == 403
    status, _, _ = request(server, "GET", "/", headers={"Host": f"evil.example:{server.server_address[1]}"})
    assert status == 403
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        assert ledger.approvals(batch.batch_id) == [] and ledger.batch(batch.batch_id).state == "proposed"
    port = server.server_address[1]
    status, _, _ = request(server, "GET", "/", headers={"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"})
    assert status == 200


def test_a_non_loopback_host_or_a_missing_run_is_refused(run_dir, tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.com")
    result = CliRunner().invoke(cli, ["serve", "--run-dir", str(run_dir), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0
    assert "--host '0.0.0.0' is not a loopback address" in result.output
    with pytest.raises(ValueError, match="not a loopback address"):
        make_server(run_dir, "10.0.0.1", 0)
    result = CliRunner().invoke(cli, ["serve", "--run-dir", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "No run in" in result.output
