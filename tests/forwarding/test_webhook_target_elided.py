"""A webhook's ``target`` (GET /forwarding/destinations, supervisors) shows where it points and
nothing that authenticates: chat-bot hooks carry their token in the path
(Feishu ``/open-apis/bot/v2/hook/<token>``, Slack ``/services/T/B/<secret>``) or a ``sign=``."""

from __future__ import annotations

import pytest

from gridworker.delivery import WebhookDestination

FEISHU = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
SLACK = "XyZ0aBcDeFgHiJkLmNoPqRsT"


@pytest.mark.parametrize(
    ("url", "expected", "secrets"),
    [
        (f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU}", "https://open.feishu.cn/...", (FEISHU,)),
        (f"https://hooks.slack.com/services/T0001/B0002/{SLACK}", "https://hooks.slack.com/...", (SLACK, "T0001")),
        ("https://oapi.dingtalk.com/robot/send?access_token=Ding-Tok-1&timestamp=1&sign=Sig-Val-2", "https://oapi.dingtalk.com/...", ("Ding-Tok-1", "Sig-Val-2")),
        ("http://hookuser:pa/ss@10.0.0.9:8080/hook", "http://10.0.0.9:8080/...", ("hookuser", "pa/ss", "hook")),
        ("http://10.0.0.9:8080/", "http://10.0.0.9:8080/", ()),
        ("https://dispatch.example.gov.cn", "https://dispatch.example.gov.cn", ()),
    ],
)
def test_webhook_target_is_scheme_host_port_only(url, expected, secrets):
    target = WebhookDestination(name="hook", url=url, secret="s3cret-hmac").target()
    assert target == expected
    for secret in secrets:
        assert secret not in target
