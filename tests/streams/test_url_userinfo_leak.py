"""A camera password with an unencoded ``/``, ``?`` or ``#`` (security review: urlsplit ends the
host at the first of them, so it saw no password at all).

* ``parse_source`` refuses a URL with an ``@`` after the first ``/``, ``?`` or ``#`` behind
  ``://``, and says to percent-encode; the message holds neither the user-info nor urlsplit's
  own text (which quoted the start of the password as a port).
* ``redact_url`` / ``redact_text`` / ``url_secrets`` read everything from ``://`` to the last
  ``@`` as user-info, so such a URL that got past validation (a saved config, a raw string in a
  log line) never shows its password.
* ``sign``, ``signature``, ``hash``, ``md5``, ``access_token`` are secret query names.
"""

from __future__ import annotations

import logging

import pytest

from gridworker.streams.redact import RedactingFilter, is_secret_name, redact_text, redact_url, url_secrets
from gridworker.streams.sources import SourceError, parse_source

PW = "Se/cr#3t?x"  # distinctive pieces: "cr", "3t", "Se" never appear in the hosts below
URLS = {
    "slash": ("rtsp://admin:12/34@10.0.0.7/s", ("12/34", "34@")),
    "slash-word": ("rtsp://admin:Se/cr3t@10.0.0.7/s", ("Se/cr3t", "cr3t")),
    "hash": ("rtsp://admin:Secr#3t@10.0.0.7/s", ("Secr", "3t@")),
    "question": ("rtsp://admin:Se?cr3t@10.0.0.7:554/s", ("Se?cr3t", "cr3t")),
    "all": (f"rtsp://admin:{PW}@10.0.0.7/s?user=admin", ("cr#3t", "Se/", "3t?x")),
    "at-too": ("rtsps://admin:a@b/c#d@cam.local:322/s", ("a@b", "c#d")),
}


@pytest.mark.parametrize("name", sorted(URLS))
def test_parse_source_refuses_an_ambiguous_userinfo_without_echoing_it(name):
    url, pieces = URLS[name]
    with pytest.raises(SourceError) as info:
        parse_source(url)
    message = str(info.value)
    assert "ambiguous" in message and "%2F" in message and "%3F" in message and "%23" in message and "%40" in message
    assert "admin" not in message and "Port" not in message and "integer" not in message
    for piece in pieces:
        assert piece not in message, (piece, message)


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://10.0.0.7/cam?email=a@b.com",  # an '@' in the query: encode it too
        "https://cdn.example/@live/index.m3u8",
    ],
)
def test_an_at_sign_past_the_host_is_refused_with_the_encoding_hint(url):
    with pytest.raises(SourceError, match="%40"):
        parse_source(url)


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://admin:12%2F34@10.0.0.7/s",
        "rtsp://admin:Secr%233t@10.0.0.7/s",
        "rtsp://admin:Se%3Fcr3t@10.0.0.7:554/s",
        "rtsp://admin:p@ss@10.0.0.7/s",  # '@' before the first '/': the last one ends the user-info
        "rtsp://admin:pw@[::1]:8554/cam?token=abc#frag",
    ],
)
def test_encoded_and_unambiguous_passwords_still_parse(url):
    source = parse_source(url)
    assert source.host in ("10.0.0.7", "::1")


def test_a_bad_port_error_does_not_quote_urlsplit():
    with pytest.raises(SourceError) as info:
        parse_source("rtsp://admin:pw@cam.local:55x4/s")
    message = str(info.value)
    assert message.startswith("'rtsp://***@cam.local:") and "not a valid URL" in message
    assert "integer" not in message and "could not be cast" not in message and "pw@" not in message


@pytest.mark.parametrize("name", sorted(URLS))
def test_redaction_never_shows_the_password(name):
    url, pieces = URLS[name]
    shown = redact_url(url)
    assert shown.startswith(url.split("://")[0] + "://***@"), shown
    text = redact_text(f"camera c0: connecting to {url} (attempt 1); failed: '{url}'")
    for piece in pieces:
        assert piece not in shown and piece not in text, (piece, shown, text)
    assert "admin:" not in shown and "admin:" not in text


def test_redact_url_keeps_the_real_host():
    """What follows the last '@' is the host as typed: the redacted URL still says where it points."""
    shown = {
        redact_url("rtsp://admin:12/34@10.0.0.7/s"),
        redact_url("rtsp://admin:Secr#3t@10.0.0.7/s"),
        redact_url("rtsp://admin:Se?cr3t@10.0.0.7/s"),
    }
    assert shown == {"rtsp://***@10.0.0.7/s"}
    assert redact_url("rtsp://admin:Se/cr3t@10.0.0.7:554/s?pwd=abc&channel=1") == "rtsp://***@10.0.0.7:554/s?pwd=***&channel=1"
    assert redact_url("http://u:a/b@[::1]:8080/v") == "http://***@[::1]:8080/v"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:12/34@10.0.0.7/s", {"12/34", "12%2F34"}),
        ("rtsp://admin:Secr#3t@10.0.0.7/s", {"Secr#3t", "Secr%233t"}),
        ("rtsp://u:S?x1@h/s?sign=abcd", {"S?x1", "S%3Fx1", "abcd"}),
    ],
)
def test_url_secrets_find_the_whole_password(url, expected):
    assert set(url_secrets(url)) == expected


def test_a_raw_log_line_is_scrubbed_by_the_filter(caplog):
    """A URL that never went through parse_source (a raw string) in an ordinary log line."""
    logger = logging.getLogger("gridworker.test_url_userinfo_leak")
    logger.addFilter(RedactingFilter())
    url = "rtsp://admin:54863/Secr3t@127.0.0.1:54863/s"
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("camera c0: connecting to %s (attempt 1)", url)
    assert "Secr3t" not in caplog.text and "rtsp://***@127.0.0.1:54863/s" in caplog.text


@pytest.mark.parametrize("name", ["sign", "Signature", "hash", "md5", "access_token", "X-Sign", "file_md5"])
def test_signing_parameters_are_secret(name):
    assert is_secret_name(name)
    assert redact_url(f"https://hook.example/x?ts=1&{name}=abc123") == f"https://hook.example/x?ts=1&{name}=***"


def test_plain_parameters_stay_readable():
    assert redact_url("https://hook.example/x?ts=1&user=ops&channel=2") == "https://hook.example/x?ts=1&user=ops&channel=2"


@pytest.mark.parametrize(
    "text, hidden",
    [
        # pydantic shortens a long input_value: the '@' is cut away, the password's start is not
        ("input_value='rtsp://admin:Sup3rS3cret...Channels/101 x'", "Sup3rS3cret"),
        ("input_value='rtsp://admin:Gr1dW0rkerP...'", "Gr1dW0rkerP"),
        # a quote in the password ended the URL in free text before its '@'
        ("open rtsp://admin:pa'ss9@10.0.0.7/s failed", "pa'ss9"),
        ('open rtsp://admin:pa"ss9@10.0.0.7/s failed', 'pa"ss9'),
    ],
)
def test_a_url_cut_short_or_quoted_in_free_text_shows_no_password(text, hidden):
    out = redact_text(text)
    assert hidden not in out and "ss9" not in out and "Sup3r" not in out and "admin" not in out
    assert "***" in out


@pytest.mark.parametrize(
    "text",
    [
        "see http://127.0.0.1:8080/x, http://[::1]:80/y and rtsp://cam.local/s; 'rtsp://cam/a' and 'ops@city'",
        # a port followed by the sentence's punctuation is still a port (review: these lost their host)
        "see http://host:8080, then", "tcp://10.0.0.7:554: Connection refused", "(http://h:8080)", "mqtt://broker:1883.",
        "nats://127.0.0.1:4222, retrying", "http://a:8080,http://b:8080",
        # JSON: a quote ends a URL, it does not start a password
        '{"url":"http://host","email":"bob@example.com"}', '{"url":"http://host:80","email":"bob@x.com"}',
    ],
)
def test_urls_without_credentials_in_free_text_are_left_readable(text):
    assert redact_text(text) == text


def test_a_catalogue_camera_refused_by_a_worker_logs_no_password(caplog):
    """The worker logged ``str(ValidationError)[:300]``: pydantic's shortened ``input_value``
    kept the password's start, its '@' cut away (security review)."""
    from gridworker.cluster.worker import parse_catalogue  # noqa: PLC0415

    raw = {"gate": b'{"id": "gate", "url": "rtsp://admin:Gr1dW0rkerPr0dSecret@10.0.0.7:554/Streaming/Channels/101 ", "fps": "many"}'}
    with caplog.at_level(logging.ERROR):
        assert parse_catalogue(raw) == {}
    assert caplog.messages and "gate" in caplog.text
    assert "Gr1dW0rker" not in caplog.text and "Pr0dSecret" not in caplog.text
