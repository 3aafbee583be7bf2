"""A secret parameter's value in one URL runs to the next ``&``, ``;`` or ``#``: the free-text
value class (which also ends at ``,`` ``)`` ``?`` and quotes) showed ``?password=a,b`` as
``password=***,b``, and ``url_secrets`` gave only ``abc`` of ``PWD=abc)def``, so the literal
scrub of a message left the rest."""

from __future__ import annotations

import pytest

from gridworker.streams.redact import redact_text, redact_url, url_secrets

# (url, what redact_url shows, the secret's distinctive pieces that must never show)
CASES = [
    ("rtsp://10.0.0.7/s?password=a,b&x=1", "rtsp://10.0.0.7/s?password=***&x=1", ("a,b", ",b")),
    ("rtsp://10.0.0.7/s?p=1&PWD=abc)def", "rtsp://10.0.0.7/s?p=1&PWD=***", ("abc", ")def")),
    ("rtsp://10.0.0.7/s?token=x'y(w)&c=1", "rtsp://10.0.0.7/s?token=***&c=1", ("x'y", "(w)")),
    ("rtsp://10.0.0.7/s?pwd=ab?cd;channel=1", "rtsp://10.0.0.7/s?pwd=***;channel=1", ("ab?cd", "?cd")),
    ("https://cdn/x.m3u8#sig=q,r)s", "https://cdn/x.m3u8#sig=***", ("q,r", ")s")),
    # a ;param in the path ends where the query starts; both stay readable around the secrets
    ("rtsp://h/cam;password=x1,y2?user=admin&pwd=S3,cret", "rtsp://h/cam;password=***?user=admin&pwd=***", ("x1,y2", "S3,cret", ",y2", ",cret")),
    # a secret name inside another parameter's value is still found
    ("rtsp://h/s?a=1?token=zz9,q&b=2", "rtsp://h/s?a=1?token=***&b=2", ("zz9", ",q")),
    # a secret value swallowing the next name: more is hidden, never less
    ("rtsp://h/s?password=ab?token=cdef&x=1", "rtsp://h/s?password=***&x=1", ("cdef", "ab?")),
]


@pytest.mark.parametrize(("url", "shown", "pieces"), CASES)
def test_redact_url_hides_the_whole_value(url: str, shown: str, pieces: tuple[str, ...]) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(("url", "shown", "pieces"), CASES)
def test_no_piece_survives_in_a_message(url: str, shown: str, pieces: tuple[str, ...]) -> None:
    message = f"cannot open {url}: 401 Unauthorized (retrying '{url}'); after <{url}> failed"
    # a quote in a URL quoted in free text ends it there: only the literal secrets catch the rest
    for text in (redact_text(message, url_secrets(url)), *(() if "'" in url else (redact_text(message),))):
        assert all(piece not in text for piece in pieces), text
        assert shown in text


def test_url_secrets_gives_the_whole_values() -> None:
    assert "a,b" in url_secrets("rtsp://10.0.0.7/s?password=a,b&x=1")
    assert "abc)def" in url_secrets("rtsp://10.0.0.7/s?p=1&PWD=abc)def")
    # the value alone, as an error message may quote it without its URL
    assert redact_text("bad credential abc)def", url_secrets("rtsp://10.0.0.7/s?PWD=abc)def")) == "bad credential ***"


def test_free_text_outside_a_url_keeps_its_tighter_value() -> None:
    # outside a URL a value ends at a comma or a parenthesis: the text around stays readable
    assert redact_text("login failed (password=abc), retry=3") == "login failed (password=***), retry=3"
