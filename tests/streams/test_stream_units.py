"""Pure-function tables: backoff schedule, config validation, URL redaction, log filter."""

from __future__ import annotations

import logging
import random
from contextlib import nullcontext as does_not_raise

import pytest
from pydantic import ValidationError

from gridworker.streams import Backoff, RedactingFilter, StreamConfig, backoff_delay, redact_text, redact_url
from gridworker.streams.redact import get_logger, url_secrets


# ---------------------------------------------------------------------------- backoff
@pytest.mark.parametrize(
    ("attempt", "initial", "cap", "jitter", "u", "expected"),
    [
        (0, 0.5, 30, 0.0, 0.5, 0.5),  # first retry = initial
        (1, 0.5, 30, 0.0, 0.5, 1.0),  # doubles
        (2, 0.5, 30, 0.0, 0.5, 2.0),
        (5, 0.5, 30, 0.0, 0.5, 16.0),
        (6, 0.5, 30, 0.0, 0.5, 30.0),  # 32 capped at 30
        (500, 0.5, 30, 0.0, 0.5, 30.0),  # huge attempt: no overflow, still capped
        (0, 1.0, 30, 0.2, 0.0, 0.8),  # lowest jitter: -20 %
        (0, 1.0, 30, 0.2, 1.0, 1.2),  # highest jitter: +20 %
        (0, 1.0, 30, 0.2, 0.5, 1.0),  # middle: no spread
        (10, 1.0, 30, 0.2, 1.0, 30.0),  # jitter never pushes past the cap
        (10, 1.0, 30, 0.2, 0.0, 24.0),  # ... but may pull below it
        (3, 0.25, 1.0, 1.0, 0.0, 0.0),  # jitter 100 % may reach zero, never negative
    ],
)
def test_backoff_delay_table(attempt, initial, cap, jitter, u, expected):
    assert backoff_delay(attempt, initial, cap, jitter, u) == pytest.approx(expected)


@pytest.mark.parametrize(("attempt", "u"), [(-1, 0.5), (0, 1.5), (0, -0.1)])
def test_backoff_delay_rejects_bad_input(attempt, u):
    with pytest.raises(ValueError):
        backoff_delay(attempt, 0.5, 30, 0.2, u)


@pytest.mark.parametrize("seed", range(5))
def test_backoff_schedule_bounded_and_resets(seed):
    b = Backoff(0.5, 8.0, 0.25, rng=random.Random(seed))
    for attempt in range(12):
        base = min(8.0, 0.5 * 2**attempt)
        delay = b.next_delay()
        assert base * 0.75 - 1e-9 <= delay <= min(8.0, base * 1.25) + 1e-9
    b.reset()
    assert 0.375 <= b.next_delay() <= 0.625


# ---------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        ({"url": "rtsp://cam.local/stream1"}, does_not_raise()),
        ({"url": "rtsps://u:p@cam.local:322/s"}, does_not_raise()),
        ({"url": "http://cam.local/video.mjpg"}, does_not_raise()),
        ({"url": "https://cam.local/live.m3u8"}, does_not_raise()),
        ({"url": "file:///data/clip.mp4"}, does_not_raise()),
        ({"url": "/data/clip.mp4"}, does_not_raise()),
        ({"url": "clip.mp4", "fps": 60}, does_not_raise()),
        ({"url": "ftp://cam.local/x"}, pytest.raises(ValidationError, match="unsupported URL scheme")),
        ({"url": "rtsp:///nohost"}, pytest.raises(ValidationError, match="no host")),
        ({"url": ""}, pytest.raises(ValidationError)),
        ({"url": "a.mp4", "fps": 0}, pytest.raises(ValidationError, match="greater than 0")),
        ({"url": "a.mp4", "fps": 61}, pytest.raises(ValidationError, match="less than or equal to 60")),
        ({"url": "a.mp4", "read_timeout_s": -1}, pytest.raises(ValidationError)),
        ({"url": "a.mp4", "backoff_jitter": 1.5}, pytest.raises(ValidationError)),
        (
            {"url": "a.mp4", "backoff_initial_s": 5, "backoff_max_s": 1},
            pytest.raises(ValidationError, match="backoff_max_s"),
        ),
        ({"url": "a.mp4", "fsp": 5}, pytest.raises(ValidationError, match="Extra inputs")),  # typo
    ],
)
def test_stream_config_validation(kwargs, expectation):
    with expectation:
        StreamConfig(**kwargs)


@pytest.mark.parametrize(
    ("url", "is_file", "realtime", "path"),
    [
        ("rtsp://h/s", False, True, None),
        ("/data/a b.mp4", True, True, "/data/a b.mp4"),
        ("file:///data/a%20b.mp4", True, True, "/data/a b.mp4"),
    ],
)
def test_stream_config_source_kind(url, is_file, realtime, path):
    cfg = StreamConfig(url=url)
    assert cfg.is_file is is_file
    assert cfg.effective_realtime is realtime
    assert (str(cfg.path) if cfg.path else None) == path


def test_stream_config_defaults_and_repr_hide_password():
    cfg = StreamConfig(url="rtsp://admin:hunter22@10.0.0.7/s")
    assert cfg.fps == 5 and cfg.loop and cfg.realtime is None
    assert "hunter22" not in repr(cfg) and "hunter22" not in str(cfg)
    assert StreamConfig(url="x.mp4", realtime=False).effective_realtime is False
    assert all(f.description for f in StreamConfig.model_fields.values())


# ---------------------------------------------------------------------------- redaction
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:secret@10.0.0.7:554/s1", "rtsp://***@10.0.0.7:554/s1"),
        ("rtsp://admin@10.0.0.7/s1", "rtsp://***@10.0.0.7/s1"),
        ("rtsp://admin:p%40ss%3Aw@cam/s?x=1", "rtsp://***@cam/s?x=1"),
        ("rtsp://admin:p@ss@cam/s", "rtsp://***@cam/s"),  # unencoded @ in the password
        ("http://u:p@[::1]:8080/v", "http://***@[::1]:8080/v"),
        ("rtsp://10.0.0.7/s1", "rtsp://10.0.0.7/s1"),
        ("/data/clip@2x.mp4", "/data/clip@2x.mp4"),
        ("", ""),
        # secrets in the query and in ;name=value parameters; other parameters stay readable
        ("rtsp://h/cam?user=admin&pwd=S3cret", "rtsp://h/cam?user=admin&pwd=***"),
        ("rtsp://h/cam?PASSWORD=a&Passwd=b&pass=c&channel=1", "rtsp://h/cam?PASSWORD=***&Passwd=***&pass=***&channel=1"),
        ("https://cdn/x.m3u8?access_token=t1&api_key=k&X-Amz-Signature=s&Expires=9", "https://cdn/x.m3u8?access_token=***&api_key=***&X-Amz-Signature=***&Expires=9"),
        ("rtsp://h/cam;user=admin;password=x1y2?subtype=0", "rtsp://h/cam;user=admin;password=***?subtype=0"),
        ("rtsp://u:p@h/cam?token=abc#sig=zz", "rtsp://***@h/cam?token=***#sig=***"),
        ("RTMP://h/live/gate?auth=abc", "RTMP://h/live/gate?auth=***"),
        ("rtsp://h/cam?pwd=", "rtsp://h/cam?pwd="),
    ],
)
def test_redact_url_table(url, expected):
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("failed: 'rtsp://a:b@h/s' returned 401", (), "failed: 'rtsp://***@h/s' returned 401"),
        ("two rtsp://a:b@h/1 and http://c:d@g/2", (), "two rtsp://***@h/1 and http://***@g/2"),
        ("password hunter22 rejected", ("hunter22",), "password *** rejected"),
        ("nothing here", ("hunter22",), "nothing here"),
        ("cannot open 'rtsp://h/c?user=a&pwd=S3cret': 401", (), "cannot open 'rtsp://h/c?user=a&pwd=***': 401"),
        ("404 for rtsp://h/c;password=abc;user=x", (), "404 for rtsp://h/c;password=***;user=x"),
        ("DESCRIBE rtsp://h/c RTSP/1.0\r\nAuthorization: Basic YWRtaW46cHc=\r\nCSeq: 2", (), "DESCRIBE rtsp://h/c RTSP/1.0\r\nAuthorization: ***\r\nCSeq: 2"),
    ],
)
def test_redact_text_table(text, secrets, expected):
    assert redact_text(text, secrets) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://u:s3cr%23t@h/s", ("s3cr%23t", "s3cr#t")),
        ("rtsp://u@h/s", ()),
        ("rtsp://u:ab@h/s", ()),  # too short to scrub safely
        ("/a/file.mp4", ()),
        ("rtsp://h/c;password=semi1?user=admin&pwd=S3%2Fcret&channel=1", ("semi1", "S3%2Fcret", "S3/cret")),
        ("https://h/x.m3u8?token=ab", ()),  # too short to scrub safely (the URL form is still redacted)
    ],
)
def test_url_secrets(url, expected):
    assert set(url_secrets(url)) == set(expected)


def test_redacting_filter_scrubs_message_args_and_traceback(caplog):
    logger = get_logger("gridworker.streams.test_redaction")
    url = "rtsp://admin:Sup3rSecret@10.1.1.1/live"
    with caplog.at_level(logging.DEBUG, logger="gridworker.streams.test_redaction"):
        logger.info("opening %s", url)
        try:
            raise OSError(f"connection refused: {url!r}")
        except OSError:
            logger.exception("failed")
    text = "\n".join(caplog.messages) + "\n" + caplog.text
    assert "Sup3rSecret" not in text
    assert "rtsp://***@10.1.1.1/live" in text


def test_redacting_filter_on_a_handler_scrubs_foreign_loggers():
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Collect()
    handler.addFilter(RedactingFilter(secrets=["hunter22"]))
    foreign = logging.getLogger("libav.rtsp.test")
    foreign.addHandler(handler)
    try:
        foreign.warning("auth hunter22 for %s", "rtsp://x:hunter22@h/s")
    finally:
        foreign.removeHandler(handler)
    assert records and "hunter22" not in records[0]
