"""The leads' web page: a login for every page and decision, money, pending proposals, Approve / Reject,
the name a decision is recorded under, and what a malformed request or a damaged run gets."""

import hashlib
import http.client
import json
import re
import shutil
import socket
import stat
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import jinja2
import pytest
from click.testing import CliRunner
from markupsafe import escape

from budget import page_view, web
from budget.controller.cli import cli
from budget.ledger import Ledger
from budget.ledger.round_records import BatchPayload
from budget.money import format_usd
from budget.page_logins import LOGINS_FILE, TOKEN_ENV, env_login, new_login, read_logins
from budget.report import templates
from budget.web import COOKIE, is_loopback, make_server


@pytest.fixture
def run_dir(waiting_run, tmp_path) -> Path:
    return Path(shutil.copytree(waiting_run.run_dir, tmp_path / "run"))


@contextmanager
def running(run_dir: Path, host: str = "127.0.0.1", **kw):
    """A server for ``run_dir`` on a free port, in a thread, for the block."""
    srv = make_server(run_dir, host, 0, quiet=kw.pop("quiet", True), **kw)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def server(run_dir):
    with running(run_dir) as srv:
        yield srv


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its cookie and the CSRF token its forms carry."""

    name: str
    cookie: str
    csrf: str


def request(srv, method: str, path: str, fields: dict | None = None, headers: dict | None = None,
            session: Session | None = None):
    """One request, redirects not followed: (status, headers, body text or bytes for the plot).

    With a ``session``, its cookie is sent, and its CSRF token with any form that does not set one.
    """
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=30)
    if session is not None and fields is not None:
        fields = {"csrf": session.csrf, **fields}
    body = urlencode(fields) if fields is not None else None
    hdrs = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    if session is not None:
        hdrs["Cookie"] = f"{COOKIE}={session.cookie}"
    conn.request(method, path, body=body, headers={**hdrs, **(headers or {})})
    resp = conn.getresponse()
    status, got, data = resp.status, dict(resp.getheaders()), resp.read()
    conn.close()
    return status, got, data if data[:8] == b"\x89PNG\r\n\x1a\n" else data.decode("utf-8", "replace")


def sign_in(srv, token: str, name: str) -> Session:
    """Open the sign-in URL, as a browser does, and read the CSRF token from the page."""
    status, headers, _ = request(srv, "GET", "/?" + urlencode({"token": token}))
    assert status == 303 and headers["Location"] == "/", (status, headers)
    cookie = re.match(rf"{COOKIE}=([^;]+);", headers["Set-Cookie"]).group(1)
    status, _, page = request(srv, "GET", "/", session=Session(name, cookie, ""))
    assert status == 200, page
    return Session(name, cookie, re.search(r'name="csrf" value="([^"]+)"', page).group(1))


@pytest.fixture
def alice(server, run_dir) -> Session:
    return sign_in(server, new_login(run_dir, "alice"), "alice")


def pending(run_dir: Path, first: str = ""):
    """The batch that waits for a lead (``first``: the round's, when another was added), and the totals."""
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        batches = ledger.batches("proposed")
        (batch,) = [b for b in batches if b.round == 1] if first else batches
        return batch, ledger.totals()


def unchanged(run_dir: Path, batch_id: str) -> bool:
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        return ledger.approvals(batch_id) == [] and ledger.batch(batch_id).state == "proposed"


def flash(srv, session: Session) -> tuple[str, str]:
    """The message the next page shows once: (kind, text)."""
    _, _, page = request(srv, "GET", "/", session=session)
    found = re.search(r'<div class="flash (\w+)" role="status">([^<]*)</div>', page)
    return (found.group(1), str(found.group(2))) if found else ("", "")


# --- the page, signed in -----------------------------------------------------------------------

def test_page_shows_who_is_signed_in_the_money_the_proposal_its_price_sample_and_plot(server, run_dir, alice):
    batch, totals = pending(run_dir)
    (run_dir / "report" / "score_vs_dollars.png").unlink()  # the page writes the report when the plot is missing
    status, headers, page = request(server, "GET", "/", session=alice)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "Signed in as <strong data-user>alice</strong>" in page and 'action="/logout"' in page
    assert batch.batch_id in page and "30 items x $0.50 x 1 annotators = $15.00" in page
    assert "$40.00 before, $25.00 after" in page and "annotate-only policy" in page
    assert totals.granted == 40_000_000 and totals.reserved >= batch.total_micro
    for label in ("granted", "reserved", "spent", "available"):
        assert f'data-money="{label}">{format_usd(getattr(totals, label))}<' in page
    assert all(str(escape(text)) in page for text in batch.payload.sample)
    assert 'formaction="/approve"' in page and 'formaction="/reject"' in page and 'name="by"' not in page
    assert page.count(f'name="csrf" value="{alice.csrf}"') == 2  # the decision form and the sign-out form
    assert '<img src="/plot.png?v=' in page and (run_dir / "report" / "score_vs_dollars.png").exists()
    status, headers, png = request(server, "GET", "/plot.png", session=alice)
    assert status == 200 and headers["Content-Type"] == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_approve_records_the_logins_name_not_a_form_field_and_a_second_approval_changes_nothing(server, run_dir,
                                                                                                 alice):
    batch, before = pending(run_dir)
    status, headers, _ = request(server, "POST", "/approve", {"batch_id": batch.batch_id, "by": "mallory"},
                                 session=alice)
    assert status == 303 and headers["Location"] == "/"
    kind, msg = flash(server, alice)
    assert kind == "ok" and msg.startswith(f"Approved {batch.batch_id} ($15.00) by alice.")
    assert flash(server, alice) == ("", "")  # shown once
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        (approval,) = ledger.approvals(batch.batch_id)
        assert (approval.decision, approval.by) == ("approved", "alice") and approval.at
        assert ledger.batch(batch.batch_id).state == "approved" and ledger.totals() == before
    _, _, page = request(server, "GET", "/", session=alice)
    assert "No proposals wait for approval" in page and "<td>alice</td>" in page and "mallory" not in page

    bob = sign_in(server, new_login(run_dir, "bob"), "bob")
    request(server, "POST", "/approve", {"batch_id": batch.batch_id}, session=bob)
    kind, msg = flash(server, bob)
    assert kind == "note" and "already approved; nothing changed" in msg
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        assert [a.by for a in ledger.approvals(batch.batch_id)] == ["alice"]
        assert ledger.totals() == before


def test_reject_needs_a_reason_and_releases_the_money(server, run_dir, alice):
    batch, before = pending(run_dir)
    request(server, "POST", "/reject", {"batch_id": batch.batch_id, "why": " "}, session=alice)
    kind, msg = flash(server, alice)
    assert kind == "error" and "Give a reason" in msg and pending(run_dir)[1] == before
    request(server, "POST", "/reject", {"batch_id": batch.batch_id, "why": "off-topic items"}, session=alice)
    assert "Its $15.00 is released." in flash(server, alice)[1]
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        after = ledger.totals()
        (decision,) = ledger.approvals(batch.batch_id)
    assert after.reserved == 0 and after.available - before.available == before.reserved >= batch.total_micro
    assert (decision.decision, decision.by, decision.why) == ("rejected", "alice", "off-topic items")
    request(server, "POST", "/approve", {"batch_id": batch.batch_id}, session=alice)
    kind, msg = flash(server, alice)
    assert kind == "error" and "already rejected" in msg


def test_bad_forms_are_refused_with_a_message(server, run_dir, alice):
    batch, before = pending(run_dir)
    request(server, "POST", "/approve", {"batch_id": ""}, session=alice)
    assert flash(server, alice) == ("error", "No batch_id in the form.")
    request(server, "POST", "/approve", {"batch_id": "nope"}, session=alice)
    kind, msg = flash(server, alice)
    assert kind == "error" and "Batch &#39;nope&#39; not found" in msg
    assert pending(run_dir)[1] == before
    assert request(server, "GET", "/approve", session=alice)[0] == 405
    assert request(server, "GET", "/nothing", session=alice)[0] == 404
    assert request(server, "POST", "/nothing", {}, session=alice)[0] == 404


def test_every_value_shown_is_escaped(server, run_dir):
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        ledger.add_batch("evil-batch", round=9, reservation_id=None, price_per_item_micro=500_000, overlap=1,
                         total_micro=1_000_000, payload=BatchPayload(
                             item_ids=(1, 2), why='a "why" with <b>tags</b> & more', available_before_micro=0,
                             available_after_micro=0,
                             sample=("<script>alert('x')</script>", ("an item", "<script>label</script>"))))
    batch, _ = pending(run_dir, "round 1")
    eve = sign_in(server, new_login(run_dir, "<script>eve</script>"), "eve")
    request(server, "POST", "/reject", {"batch_id": batch.batch_id, "why": "dup <items> & more"}, session=eve)
    kind, msg = flash(server, eve)
    assert kind == "ok" and "&lt;script&gt;eve&lt;/script&gt;: dup &lt;items&gt; &amp; more" in msg
    _, _, page = request(server, "GET", "/", session=eve)
    assert "<script" not in page and "<b>tags" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "an item / &lt;script&gt;label&lt;/script&gt;" in page  # a sample item with its label
    assert "a &#34;why&#34; with &lt;b&gt;tags&lt;/b&gt; &amp; more" in page
    decisions = page.split("Recent decisions")[1]
    assert f"<code>{batch.batch_id}</code>" in decisions and ">$15.00<" in decisions
    assert "<td>&lt;script&gt;eve&lt;/script&gt;</td>" in decisions and "dup &lt;items&gt; &amp; more" in decisions
    assert "Signed in as <strong data-user>&lt;script&gt;eve&lt;/script&gt;</strong>" in page


def test_an_unknown_message_kind_is_shown_as_a_note(run_dir):
    page = page_view.render_page(run_dir, user="alice", csrf="c", msg="hello", kind='x" onclick="alert(1)')
    assert '<div class="flash note" role="status">hello</div>' in page and "onclick" not in page


@pytest.mark.parametrize("name", ["page.html", "login.html"])
def test_the_templates_refuse_a_missing_value(name):
    with pytest.raises(jinja2.UndefinedError):
        templates().get_template(name).render()


# --- signing in --------------------------------------------------------------------------------

def test_signing_in_with_the_token_sets_a_strict_cookie_and_drops_the_token_from_the_address(server, run_dir):
    token = new_login(run_dir, "alice")
    status, headers, _ = request(server, "GET", "/?" + urlencode({"token": token}))
    assert status == 303 and headers["Location"] == "/" and token not in headers["Location"]
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and token not in cookie
    assert {"HttpOnly", "SameSite=Strict", "Path=/", f"Max-Age={12 * 3600}"} <= set(cookie.split("; "))
    assert "Secure" not in cookie
    status, headers, _ = request(server, "POST", "/login", {"token": token}, headers={"X-Forwarded-Proto": "https"})
    assert status == 303 and headers["Set-Cookie"].endswith("; Secure")  # an https proxy in front
    assert headers["Set-Cookie"].split(";")[0] != cookie.split(";")[0]  # a new session for each sign-in


@pytest.mark.parametrize("how", ["query", "form"])
@pytest.mark.parametrize("token", ["wrong", "", "x" * 5000])
def test_a_wrong_token_gets_the_sign_in_form_and_no_session(server, run_dir, how, token):
    new_login(run_dir, "alice")
    if how == "query":
        status, headers, page = request(server, "GET", "/?" + urlencode({"token": token}))
    else:
        status, headers, page = request(server, "POST", "/login", {"token": token})
    assert status == 401 and "Set-Cookie" not in headers and 'name="token"' in page
    assert "That token is not valid" in page and pending(run_dir)[0].batch_id not in page


@pytest.mark.parametrize("path", ["/", "/plot.png", "/?msg=hello", "/login"])
def test_signed_out_every_page_is_the_sign_in_form(server, run_dir, path):
    batch, _ = pending(run_dir)
    status, headers, page = request(server, "GET", path)
    assert status == (200 if path == "/login" else 401) and headers["Content-Type"].startswith("text/html")
    assert 'action="/login"' in page and 'name="token"' in page
    assert batch.batch_id not in page and "$40.00" not in page and str(run_dir) not in page


REFUSED_POSTS = {  # what a decision lacks -> how the request is made
    "no cookie": dict(session=None),
    "an unknown cookie": dict(cookie="forged"),
    "no CSRF token": dict(fields={"csrf": ""}),
    "another session's CSRF token": dict(fields={"csrf": "x" * 43}),
    "a CSRF token with non-ASCII": dict(fields={"csrf": "é"}),
    "a forged Origin": dict(headers={"Origin": "http://evil.example"}),
    "an Origin of null": dict(headers={"Origin": "null"}),
    "a foreign Host": dict(headers={"Host": "evil.example:80"}),
}


@pytest.mark.parametrize("path", ["/approve", "/reject"])
@pytest.mark.parametrize("lacks", REFUSED_POSTS)
def test_a_decision_without_a_session_its_csrf_token_or_our_origin_is_refused(server, run_dir, alice, path, lacks):
    batch, before = pending(run_dir)
    how = REFUSED_POSTS[lacks]
    session = alice if "cookie" not in how else Session("alice", how["cookie"], alice.csrf)
    session = None if "session" in how else session
    fields = {"batch_id": batch.batch_id, "why": "because", "csrf": alice.csrf, **how.get("fields", {})}
    status, headers, body = request(server, "POST", path, fields, headers=how.get("headers"), session=session)
    assert status == 403 and body.startswith("Refused") and "Set-Cookie" not in headers, (status, body)
    assert unchanged(run_dir, batch.batch_id) and pending(run_dir)[1] == before


def test_signing_out_ends_the_session(server, run_dir, alice):
    assert request(server, "POST", "/logout", {"csrf": "wrong"}, session=alice)[0] == 403
    status, headers, _ = request(server, "POST", "/logout", {}, session=alice)
    assert status == 303 and headers["Location"] == "/login" and "Max-Age=0" in headers["Set-Cookie"]
    assert request(server, "GET", "/", session=alice)[0] == 401
    batch, _ = pending(run_dir)
    assert request(server, "POST", "/approve", {"batch_id": batch.batch_id}, session=alice)[0] == 403
    assert unchanged(run_dir, batch.batch_id)


def test_the_logins_file_keeps_a_hash_only_and_a_new_token_ends_the_old_one(server, run_dir, alice):
    path = run_dir / LOGINS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = new_login(run_dir, "bob")
    text = path.read_text()
    assert token not in text and hashlib.sha256(token.encode()).hexdigest() in text
    assert [(x.name, len(x.sha256)) for x in read_logins(run_dir)] == [("alice", 64), ("bob", 64)]
    assert all(x.created.endswith("+00:00") for x in read_logins(run_dir))
    assert not list(run_dir.glob(f".{LOGINS_FILE}*"))  # no temporary file left

    new_login(run_dir, "alice")  # alice's token replaced: her session ends, bob's login stays
    assert request(server, "GET", "/", session=alice)[0] == 401
    assert [x.name for x in read_logins(run_dir)] == ["bob", "alice"]
    sign_in(server, token, "bob")
    with pytest.raises(ValueError, match="1 to 80 printable"):
        new_login(run_dir, "a\nb")


def test_a_token_from_the_environment_signs_in_and_is_stored_nowhere(run_dir):
    token = "s3cret-" * 4
    login = env_login("eve", {TOKEN_ENV: token})
    with running(run_dir, logins=[login]) as srv:
        eve = sign_in(srv, token, "eve")
        batch, _ = pending(run_dir)
        request(srv, "POST", "/approve", {"batch_id": batch.batch_id}, session=eve)
    with Ledger(run_dir / "ledger.sqlite") as ledger:
        assert [a.by for a in ledger.approvals(batch.batch_id)] == ["eve"]
    assert not (run_dir / LOGINS_FILE).exists()
    assert env_login("eve", {}) is None
    with pytest.raises(ValueError, match="at least 16"):
        env_login("eve", {TOKEN_ENV: "short"})


def test_the_log_hides_the_token(run_dir, capsys):
    token = new_login(run_dir, "alice")
    with running(run_dir, quiet=False) as srv:
        sign_in(srv, token, "alice")
    err = capsys.readouterr().err
    assert "GET /?token=[hidden]" in err and token not in err


# --- hosts -------------------------------------------------------------------------------------

def test_loopback_answers_its_own_names_and_allowed_hosts_only(run_dir):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.com")
    with running(run_dir, allow_hosts=["aod.example.com"]) as srv:
        port = srv.server_address[1]
        cases = [  # (Host, Origin, status: 401 is answered, 403 refused)
            (f"localhost:{port}", f"http://localhost:{port}", 401),
            (f"[::1]:{port}", None, 401),
            ("aod.example.com", "https://aod.example.com", 401),  # a reverse proxy that passes Host through
            (f"127.0.0.1:{port}", "https://aod.example.com", 401),  # one that rewrites it
            (f"evil.example:{port}", None, 403),  # DNS rebinding
            (f"127.0.0.1:{port}", "http://evil.example", 403),
            (f"127.0.0.1:{port}", "ftp://127.0.0.1", 403),
            ("[::1", None, 403),
        ]
        for host, origin, expected in cases:
            headers = {"Host": host, **({"Origin": origin} if origin else {})}
            assert request(srv, "GET", "/", headers=headers)[0] == expected, (host, origin)


def test_a_non_loopback_host_is_served_to_any_host_behind_the_login(run_dir):
    with running(run_dir, "0.0.0.0") as srv:
        assert not srv.loopback and srv.url.startswith(f"http://{socket.gethostname()}:")
        port = srv.server_address[1]
        assert request(srv, "GET", "/", headers={"Host": f"gpu-box:{port}"})[0] == 401
        ours = {"Host": f"gpu-box:{port}", "Origin": f"http://gpu-box:{port}"}
        assert request(srv, "GET", "/", headers=ours)[0] == 401
        batch, _ = pending(run_dir)
        alice = sign_in(srv, new_login(run_dir, "alice"), "alice")
        forged = {"Host": f"gpu-box:{port}", "Origin": "http://evil.example"}
        assert request(srv, "POST", "/approve", {"batch_id": batch.batch_id}, headers=forged, session=alice)[0] == 403
        assert unchanged(run_dir, batch.batch_id)
        assert request(srv, "POST", "/approve", {"batch_id": batch.batch_id}, headers=ours, session=alice)[0] == 303
        assert not unchanged(run_dir, batch.batch_id)
    with pytest.raises(ValueError, match="timeout"):
        make_server(run_dir, "127.0.0.1", 0, timeout=0)


# --- malformed requests and a damaged run ------------------------------------------------------

def raw(srv, data: bytes, wait: float = 10.0) -> tuple[int, str, float]:
    """Send bytes as they are and read the answer to its end: (status, body, seconds it took)."""
    start = time.monotonic()
    with socket.create_connection(srv.server_address[:2], timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode("utf-8", "replace")
    return int(text.split(" ", 2)[1]), text.partition("\r\n\r\n")[2], time.monotonic() - start


def post_bytes(port: int, path: str, headers: dict[str, str], body: bytes = b"", cookie: str = "") -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    lines += [f"Cookie: {COOKIE}={cookie}"] if cookie else []
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


MALFORMED = {  # headers, body -> status; and without a session, where the headers alone are well-formed
    "a Content-Length that is no number": ({"Content-Length": "abc"}, b"", 400, 400),
    "a negative Content-Length": ({"Content-Length": "-5"}, b"", 400, 400),
    "a Content-Length in other digits": ({"Content-Length": "\u00b2"}, b"", 400, 400),
    "two Content-Lengths": ({"Content-Length": "3", "content-length": "4"}, b"abcd", 400, 400),
    "a body over 64 KiB": ({"Content-Length": str(10**12)}, b"", 413, 413),
    "a chunked body": ({"Transfer-Encoding": "chunked"}, b"0\r\n\r\n", 411, 411),
    "a body cut short": ({"Content-Length": "100"}, b"token=abc", 408, 403),
    "too many fields": ({"Content-Length": "119"}, b"&".join([b"a=1"] * 30), 400, 403),
}


@pytest.mark.parametrize("path,signed_in", [("/login", False), ("/approve", True), ("/approve", False)],
                         ids=["login", "approve", "approve-signed-out"])
@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_post_gets_a_4xx_within_the_timeout_and_the_server_goes_on(run_dir, case, path, signed_in):
    headers, body, expected, signed_out = MALFORMED[case]
    expected = signed_out if path == "/approve" and not signed_in else expected  # no session: its body is not read
    batch, _ = pending(run_dir)
    with running(run_dir, timeout=0.5) as srv:
        cookie = sign_in(srv, new_login(run_dir, "alice"), "alice").cookie if signed_in else ""
        status, text, took = raw(srv, post_bytes(srv.server_address[1], path, headers, body, cookie))
        assert status == expected and took < 5 and text.strip(), (status, text)
        assert request(srv, "GET", "/login")[0] == 200  # the next request is served
    assert unchanged(run_dir, batch.batch_id)


def test_a_bad_request_line_or_path_gets_a_4xx(server):
    port = server.server_address[1]
    assert raw(server, b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n")[0] == 431
    assert raw(server, b"DELETE / HTTP/1.1\r\n\r\n")[0] == 501
    assert raw(server, f"GET //[ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())[0] == 404
    assert raw(server, f"GET /?{'&'.join(['a=1'] * 30)} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())[0] == 400


def test_a_corrupt_ledger_gets_a_one_line_error_page(server, run_dir, alice):
    batch, _ = pending(run_dir)
    for extra in run_dir.glob("ledger.sqlite-*"):
        extra.unlink()
    (run_dir / "ledger.sqlite").write_bytes(b"this is not a database " * 200)
    for method, path, fields in (("GET", "/", None), ("GET", "/plot.png", None),
                                 ("POST", "/approve", {"batch_id": batch.batch_id})):
        status, headers, body = request(server, method, path, fields, session=alice)
        assert status == 500 and headers["Content-Type"].startswith("text/plain"), (path, status)
        assert body.startswith("Error: ") and body.count("\n") == 1 and "not a ledger this tool can read" in body
    (run_dir / LOGINS_FILE).write_text("{not json")
    status, _, body = request(server, "GET", "/", session=alice)
    assert status == 500 and "is not a list of logins" in body and body.count("\n") == 1


# --- the command -------------------------------------------------------------------------------

@pytest.fixture
def no_serving(monkeypatch):
    """``serve`` binds, says how to sign in, and stops at once (as after Ctrl-C)."""
    def stop(self, poll_interval=0.5):
        raise KeyboardInterrupt
    monkeypatch.setattr(web._Server, "serve_forever", stop)
    monkeypatch.delenv(TOKEN_ENV, raising=False)


def test_serve_prints_a_new_login_once_and_only_its_hash_is_kept(run_dir, no_serving):
    args = ["serve", "--run-dir", str(run_dir), "--port", "0", "--user", "Lead Tester"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    (token,) = re.findall(r"\?token=([\w-]+)", first.output)
    assert "shown once" in first.output and "Stopped." in first.output
    assert [x.name for x in read_logins(run_dir)] == ["Lead Tester"]
    assert token not in (run_dir / LOGINS_FILE).read_text()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "?token=..." in again.output and token not in again.output
    assert "--user 'Lead Tester' --new-token" in again.output
    renewed = CliRunner().invoke(cli, [*args, "--new-token"])
    (new,) = re.findall(r"\?token=([\w-]+)", renewed.output)
    assert new != token and [x.sha256 for x in read_logins(run_dir)] == [hashlib.sha256(new.encode()).hexdigest()]


def test_serve_with_a_token_in_the_environment_stores_and_prints_none(run_dir, no_serving, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "t" * 32)
    result = CliRunner().invoke(cli, ["serve", "--run-dir", str(run_dir), "--port", "0", "--user", "eve"])
    assert result.exit_code == 0 and f"the token in {TOKEN_ENV}" in result.output and "t" * 32 not in result.output
    assert not (run_dir / LOGINS_FILE).exists()
    result = CliRunner().invoke(cli, ["serve", "--run-dir", str(run_dir), "--new-token"])
    assert result.exit_code == 2 and f"{TOKEN_ENV} is set" in result.output


def test_token_only_makes_a_login_without_serving(run_dir, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.setenv("USER", "carol")
    result = CliRunner().invoke(cli, ["serve", "--run-dir", str(run_dir), "--token-only"])
    assert result.exit_code == 0 and "http://127.0.0.1:8765/?token=" in result.output
    assert [x.name for x in read_logins(run_dir)] == ["carol"]


def test_serve_refuses_bad_input_in_one_line_and_writes_no_login(run_dir, tmp_path, no_serving):
    corrupt = Path(shutil.copytree(run_dir, tmp_path / "corrupt"))
    for extra in corrupt.glob("ledger.sqlite-*"):
        extra.unlink()
    (corrupt / "ledger.sqlite").write_bytes(b"\0junk" * 1000)
    bad_logins = Path(shutil.copytree(run_dir, tmp_path / "bad-logins"))
    (bad_logins / LOGINS_FILE).write_text(json.dumps({"alice": "x"}))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cases = [  # (arguments, exit status, what the one line says)
            (["--run-dir", str(run_dir), "--port", "99999"], 2, "99999 is not in the range 0<=x<=65535"),
            (["--run-dir", str(run_dir), "--port", "http"], 2, "'http' is not a valid integer"),
            (["--run-dir", str(tmp_path / "nothing")], 2, "No run in"),
            (["--run-dir", str(corrupt)], 2, "is not a ledger this tool can read"),
            (["--run-dir", str(bad_logins)], 2, "is not a list of logins"),
            (["--run-dir", str(run_dir), "--user", "a\tb"], 2, "1 to 80 printable characters"),
            (["--run-dir", str(run_dir), "--port", str(busy.getsockname()[1])], 1, "Cannot listen on 127.0.0.1:"),
        ]
        for args, code, says in cases:
            result = CliRunner().invoke(cli, ["serve", *args])
            lines = [line for line in result.output.splitlines() if line.startswith("Error")]
            assert result.exit_code == code and len(lines) == 1 and says in result.output, (args, result.output)
            assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert not (run_dir / LOGINS_FILE).exists()  # a token is made only once the port is ours
