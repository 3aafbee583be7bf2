"""A webhook's ``target`` (GET /forwarding/destinations, supervisors) shows where it points and
nothing that authenticates: chat-bot hooks carry their token in the path
(Feishu ``/open-apis/bot/v2/hook/<token>``, Slack ``/services/T/B/<secret>``) or a ``sign=``."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from gridworker.delivery import WebhookDestination
from gridworker.delivery.outbox import OutboxEvent
from gridworker.delivery.dispatcher import Outcome
from gridworker.delivery.webhook import WebhookSender

FEISHU = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
SLACK = "XyZ0aBcDeFgHiJkLmNoPqRsT"


@pytest.mark.parametrize(
    ("url", "expected", "secrets"),
    [
        (f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU}", "https://open.feishu.cn/...", (FEISHU,)),
        (f"https://hooks.slack.com/services/T0001/B0002/{SLACK}", "https://hooks.slack.com/...", (SLACK, "T0001")),
        ("https://oapi.dingtalk.com/robot/send?access_token=Ding-Tok-1&timestamp=1&sign=Sig-Val-2", "https://oapi.dingtalk.com/...", ("Ding-Tok-1", "Sig-Val-2")),
        ("http://hookuser:pa%2Fss@10.0.0.9:8080/hook", "http://10.0.0.9:8080/...", ("hookuser", "pa%2Fss", "pa/ss", "hook")),
        ("http://10.0.0.9:8080/", "http://10.0.0.9:8080/", ()),
        ("https://dispatch.example.gov.cn", "https://dispatch.example.gov.cn", ()),
    ],
)
def test_webhook_target_is_scheme_host_port_only(url, expected, secrets):
    target = WebhookDestination(name="hook", url=url, secret="s3cret-hmac").target()
    assert target == expected
    for secret in secrets:
        assert secret not in target


@pytest.mark.parametrize(
    "url",
    ["http://hookuser:pa/ss@10.0.0.9:8080/hook", "http://hookuser:12/Tr0ub4dor@10.0.0.9/hook", "https://hookuser:Tr0ub?4dor@x.example/h"],
)
def test_a_webhook_url_whose_user_info_cannot_be_told_apart_is_refused_without_quoting_it(url):
    """An unencoded '/', '?' or '#' in the password would make the host the user name and the
    port the password's start: refused when the settings load, not a crash at start that quotes it."""
    with pytest.raises(ValidationError) as err:
        WebhookDestination(name="hook", url=url, secret="s3cret-hmac")
    text = " ".join(e["msg"] for e in err.value.errors())  # what gridworker says (pydantic's repr adds the input)
    assert "ambiguous" in text and "%2F" in text
    for part in ("hookuser", "pa/ss", "Tr0ub", "10.0.0.9", "x.example"):
        assert part not in text


def test_a_webhook_url_httpx_cannot_take_is_refused_without_its_parts():
    with pytest.raises(ValidationError) as err:
        WebhookDestination(name="hook", url="http://10.0.0.9:Tok-Sekr3t/hook", secret="s3cret-hmac")
    text = " ".join(e["msg"] for e in err.value.errors())
    assert "not a valid URL" in text and "Tok-Sekr3t" not in text


class _EchoingReceiver(BaseHTTPRequestHandler):
    """A real receiver that refuses every POST with an error page quoting the path it got
    (as many web servers' 404 pages do)."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = f"no hook at {self.path}".encode()
        self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_receivers_error_page_quoting_the_hook_path_does_not_leak_its_token():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingReceiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/open-apis/bot/v2/hook/{FEISHU}"
    sender = WebhookSender(WebhookDestination(name="feishu", url=url, secret="s3cret-hmac"))
    event = OutboxEvent(1, "incident.opened", 7, 1, "k-1", "illegal_parking", "site", "cam", "unit", "", {"x": 1}, 0.0)
    try:
        result = sender.send(event)
    finally:
        sender.close()
        server.shutdown()
        server.server_close()
    assert result.outcome is Outcome.DEAD and result.error is not None and "HTTP 404" in result.error
    assert FEISHU not in result.error and "/hook/" not in result.error, result.error
