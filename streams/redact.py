"""Keep camera passwords and tokens out of logs, errors, API responses and metrics.

Camera URLs embed credentials in three places, and FFmpeg/PyAV error messages repeat the
URL verbatim:

* user-info: ``rtsp://admin:secret@10.0.0.7/stream1``
* the query: ``rtsp://10.0.0.7/cam?user=admin&pwd=secret``, ``https://cdn/x.m3u8?token=...``
* ``;name=value`` parameters: ``rtsp://10.0.0.7/cam;password=secret``

Everything in ``streams/`` (and the service) that turns a URL or a library error into text
goes through these helpers.

Policy: the whole user-info part becomes ``***`` (``rtsp://***@host/...``; neither the user
nor the password survives); the value of every query or ``;`` parameter whose name says
secret (:func:`is_secret_name`: ``pwd``, ``password``, ``passwd``, ``pass``, ``token``,
``key``, ``auth``, ``secret``, ``signature``, ``sig``, ``sign``, ``hash``, ``md5`` and names
ending in them, such as ``access_token`` or ``api_key``; case-insensitive) becomes ``***``.
Other parameters (``user``, ``channel``, ``subtype``) stay readable. In a URL a value runs
to the next ``&``, ``;`` or ``#`` (a ``;param`` before the query also ends at its ``?``), so a
password holding ``,`` or ``)`` is hidden whole (``?password=a,b`` reads ``?password=***``);
in free text outside a URL it also ends at whitespace, a quote, ``,`` or ``)``.

The user-info is found the way a human would read a mistyped URL, not the way ``urlsplit``
does: a password with an unencoded ``/``, ``?`` or ``#`` (``rtsp://admin:12/34@host/s``) ends
``urlsplit``'s host at that character, so it would see no password at all. Here everything
from ``://`` to the *last* ``@`` of the URL is user-info, even past a ``/``, ``?`` or ``#``.
An ``@`` in a path (``/clips/@2x/``) or a query value (``?email=a@b.com``) is therefore read
as the end of a user-info too: that redacts more than it must (the host included), never
less. :func:`~gridworker.streams.sources.parse_source` refuses such ambiguous camera URLs.

Example:
    >>> redact_url("rtsp://admin:secret@10.0.0.7:554/stream1")
    'rtsp://***@10.0.0.7:554/stream1'
    >>> redact_url("rtsp://10.0.0.7/cam;password=x1y2?user=admin&pwd=S3cret")
    'rtsp://10.0.0.7/cam;password=***?user=admin&pwd=***'
    >>> redact_text("open failed: 'rtsp://admin:secret@10.0.0.7/s1' returned 401")
    "open failed: 'rtsp://***@10.0.0.7/s1' returned 401"
    >>> redact_url("rtsp://admin:Se/cr#3t@10.0.0.7/s1")
    'rtsp://***@10.0.0.7/s1'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "get_logger",
    "install_handler_redaction",
    "is_secret_name",
    "redact_text",
    "redact_url",
    "split_userinfo",
    "url_origin",
    "url_secrets",
]

REDACTED = "***"

# scheme://userinfo@ at the start of one URL (whitespace and all: the whole string is the URL);
# the user-info runs to the LAST '@', past any '/', '?' or '#' (an unencoded one in a password)
_URL_HEAD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?:(?P<userinfo>.*)@)?", re.DOTALL)
# where the host[:port] ends once the user-info is gone
_AUTHORITY_END = re.compile(r"[/?#]")
# name=value after ? & ; # (a query, a ;param, a fragment) or at a word start in free text
_PARAM = re.compile(r"(?P<lead>(?:^|[?&;#\s'\"(,]))(?P<name>[A-Za-z][A-Za-z0-9_.\-]*)=(?P<value>[^?&;#\s'\"<>),]*)")
# the start of a name=value in one URL; where its value ends: _secret_spans
_URL_PARAM = re.compile(r"[?&;#](?P<name>[A-Za-z][A-Za-z0-9_.\-]*)=")
# where the path ends: the query or the fragment begins
_QUERY_START = re.compile(r"[?#]")
# where a value ends in one URL: in the query or fragment at & ; #, before them also at the query's ?
_QUERY_VALUE_END = re.compile(r"[&;#]")
_PATH_VALUE_END = re.compile(r"[?&;#]")
# a URL in free text: it ends at whitespace, a quote or < >
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]*")
# user:password with a quote in the password (where _URL_IN_TEXT would end the URL): no quote,
# ':' or JSON punctuation in the user, none of ',{}[]' in the password, bounded lengths
_QUOTED_USERINFO = re.compile(
    r"\b(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^\s@/<>:'\",{}\[\]]{1,256}:[^\s@/<>,{}\[\]'\"]{0,256}['\"][^\s@/<>,{}\[\]]{0,256}@"
)
# an authority that is a host[:port] (or a bracketed IPv6 one): anything else with a ':' is user:password cut short
_PLAIN_AUTHORITY = re.compile(r"(?:\[[^\]]*\]|[^:\[\]]*)(?::\d*)?")
# what may follow a URL in a sentence without being part of it
_TRAILING_PUNCTUATION = ".,;:!?)]}`"
# an Authorization header in a protocol dump (FFmpeg's RTSP/HTTP debug log): Basic is base64 of user:password
_AUTH_HEADER = re.compile(r"(?im)^(?P<head>[ \t]*(?:proxy-)?authorization:[ \t]*)(?P<value>[^\r\n]+)")
_SECRET_WORDS = (
    "password", "passwd", "passphrase", "pwd", "pass", "token", "secret", "signature", "sig", "sign", "hash", "md5",
    "key", "auth", "credential", "credentials",
)


def is_secret_name(name: str) -> bool:
    """Whether a URL parameter called ``name`` carries a secret (case, ``-`` and ``_`` ignored).

    Example:
        >>> [is_secret_name(n) for n in ("PWD", "access_token", "X-Api-Key", "user", "channel")]
        [True, True, True, False, False]
    """
    norm = re.sub(r"[^a-z0-9]", "", name.lower())
    return bool(norm) and (norm in _SECRET_WORDS or norm.endswith(_SECRET_WORDS) or norm in ("pw", "sid", "session", "sessionid"))


def _redact_params(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if not m.group("value") or not is_secret_name(m.group("name")):
            return m.group(0)
        return f"{m.group('lead')}{m.group('name')}={REDACTED}"

    return _PARAM.sub(sub, text)


def _secret_spans(rest: str) -> list[tuple[int, int]]:
    """Where the values of ``rest``'s secret parameters lie (``rest``: one URL from its host on).

    In one URL a value runs to the next ``&``, ``;`` or ``#`` (or the end): a password may hold
    ``,`` ``)`` ``'`` or ``?``. Before the query (a ``;param`` in the path) the query's ``?``
    ends it too. Every ``name=`` after ``? & ; #`` is looked at, also inside another
    parameter's value, and what the free-text reading (:data:`_PARAM`) finds is added, so a
    URL is never redacted less than free text would be. Overlapping spans are all returned.
    """
    query = _QUERY_START.search(rest)
    query_at = len(rest) if query is None else query.start()
    spans: list[tuple[int, int]] = []
    for m in _URL_PARAM.finditer(rest):
        if is_secret_name(m.group("name")):
            end = (_PATH_VALUE_END if m.start() < query_at else _QUERY_VALUE_END).search(rest, m.end())
            spans.append((m.end(), len(rest) if end is None else end.start()))
    spans += [m.span("value") for m in _PARAM.finditer(rest) if is_secret_name(m.group("name"))]
    return [(start, end) for start, end in spans if end > start]


def _redact_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each stretch that ``spans`` cover (overlapping or not) replaced by ``***``."""
    out: list[str] = []
    done = 0
    for start, end in sorted(spans):
        if start >= done:  # not inside the stretch before
            out += [text[done:start], REDACTED]
        done = max(done, end)
    return "".join(out) + text[done:]


def split_userinfo(url: str) -> tuple[str, str | None, str] | None:
    """``url`` as ``(scheme://, user-info or None, the rest from the host on)``; None when it
    does not start with ``scheme://``.

    The user-info runs to the last ``@``, past any unencoded ``/``, ``?`` or ``#`` (see the
    module's policy), so a password never ends up in the host or path.

    Example:
        >>> split_userinfo("rtsp://admin:12/34@10.0.0.7:554/s")
        ('rtsp://', 'admin:12/34', '10.0.0.7:554/s')
        >>> split_userinfo("rtsp://10.0.0.7/s?x=1")
        ('rtsp://', None, '10.0.0.7/s?x=1')
    """
    m = _URL_HEAD.match(url)
    if m is None:
        return None
    return m.group("scheme"), m.group("userinfo"), url[m.end() :]


#: What to tell whoever wrote a URL that :func:`ambiguous_userinfo` refuses.
AMBIGUOUS_USERINFO_HELP = (
    "it has an '@' after the first '/', '?' or '#' following '://', so its user name, password and host cannot be"
    " told apart; percent-encode reserved characters in the user name and password ('/' as %2F, '?' as %3F,"
    " '#' as %23, '@' as %40), and an '@' in the path or query as %40"
)


def ambiguous_userinfo(url: str) -> bool:
    """Whether ``url`` has an ``@`` after the first ``/``, ``?`` or ``#`` that follows ``://``.

    A URL parser ends the host there: with one of them unencoded in a password
    (``rtsp://admin:12/34@10.0.0.7/s``) it takes ``admin`` for the host and the password's start
    for the port, and would connect there with the rest of the password in the path. Camera
    and webhook URLs like that are refused (say so with :data:`AMBIGUOUS_USERINFO_HELP`).

    Example:
        >>> ambiguous_userinfo("rtsp://admin:12/34@10.0.0.7/s"), ambiguous_userinfo("rtsp://admin:12%2F34@10.0.0.7/s")
        (True, False)
    """
    start = url.find("://")
    if start < 0:
        return False
    end = _AUTHORITY_END.search(url, start + 3)
    return end is not None and "@" in url[end.start() :]


def redact_url(url: str) -> str:
    """Return ``url`` with any ``user:password@`` replaced by ``***@`` and secret parameters by ``***``.

    Works on URLs whose password contains reserved characters (``@``, ``:``, ``/``, ``?``,
    ``#``); plain paths and URLs without credentials are returned unchanged.
    """
    if "://" not in url:
        return url
    split = split_userinfo(url)
    if split is None:
        return redact_text(url)
    scheme, userinfo, rest = split
    return f"{scheme}{'' if userinfo is None else REDACTED + '@'}{_redact_spans(rest, _secret_spans(rest))}"


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` and ``/...`` for any path, query or fragment: where it
    points and nothing else (no user-info; paths and queries can hold tokens, such as a chat
    bot's ``/bot/v2/hook/<token>`` or ``?sign=``).

    Example:
        >>> url_origin("https://u:pw@open.feishu.cn/open-apis/bot/v2/hook/0f1e2d?sign=x")
        'https://open.feishu.cn/...'
        >>> url_origin("http://10.0.0.9:8080/")
        'http://10.0.0.9:8080/'
    """
    split = split_userinfo(url)
    if split is None:
        return REDACTED
    scheme, _, rest = split
    end = _AUTHORITY_END.search(rest)
    host, after = (rest, "") if end is None else (rest[: end.start()], rest[end.start() :])
    return f"{scheme}{host}{after if after in ('', '/') else '/...'}"


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets of ``url`` (its password, the values of its secret parameters) in the
    spellings they may appear in (raw, decoded, encoded).

    Used to scrub text that mentions a secret *without* the URL around it.
    Empty values and 1-2 character ones (which would redact random text) are skipped.
    """
    split = split_userinfo(url) if "://" in url else None
    if split is None:
        return ()
    _, userinfo, rest = split
    values: list[str] = []
    _, sep, password = (userinfo or "").partition(":")
    if sep:
        values.append(password)
    values += [rest[start:end] for start, end in _secret_spans(rest)]
    spellings: set[str] = set()
    for value in values:
        if len(value) >= 3:
            spellings |= {value, unquote(value), quote(unquote(value), safe="")}
    return tuple(sorted((s for s in spellings if len(s) >= 3), key=len, reverse=True))


def _redact_url_in_text(url: str) -> str:
    """:func:`redact_url`, and a URL cut short inside its user-info (``rtsp://admin:Sup3r...``,
    a message shortened for display, its ``@`` gone) loses its whole authority: a ``:``
    followed by anything but a port's digits is no host[:port]."""
    redacted = redact_url(url)
    if redacted != url:
        return redacted
    head, _, rest = url.partition("://")
    end = _AUTHORITY_END.search(rest)
    authority = rest if end is None else rest[: end.start()]
    # a host has no ',': what follows one is the sentence (or a list of URLs), as is punctuation at the end
    if _PLAIN_AUTHORITY.fullmatch(authority.split(",", 1)[0].rstrip(_TRAILING_PUNCTUATION)):
        return url
    return f"{head}://{REDACTED}{rest[len(authority):]}"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Redact every literal ``secrets`` string, every URL inside ``text`` (as :func:`redact_url`),
    secret ``name=value`` parameters elsewhere and ``Authorization:`` header lines.

    The literal secrets go first: redacting a parameter first could split one (``a,b`` of
    ``password=a,b`` outside a URL reads as ``a``) so that its rest is no longer found."""
    out = text
    for secret in secrets:
        if secret:
            out = out.replace(secret, REDACTED)
    out = _QUOTED_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", out)
    out = _URL_IN_TEXT.sub(lambda m: _redact_url_in_text(m.group(0)), out)
    out = _redact_params(out)
    return _AUTH_HEADER.sub(lambda m: f"{m.group('head')}{REDACTED}", out)


class RedactingFilter(logging.Filter):
    """Logging filter that redacts URL credentials (and given secrets) from records.

    Attach it to a handler to scrub everything that handler emits (including FFmpeg's
    ``libav.*`` records), or to a logger to scrub what that logger creates.

    Example:
        >>> handler = logging.StreamHandler()
        >>> handler.addFilter(RedactingFilter())
        >>> logging.getLogger().addHandler(handler)
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not kill logging
            message = str(record.msg)
        clean = redact_text(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, self.secrets)
        return True


def install_handler_redaction(logger: logging.Logger | None = None, secrets: Iterable[str] = ()) -> None:
    """Attach a :class:`RedactingFilter` to every handler of ``logger`` (default: the root).

    Handler filters see the records of *every* logger that reaches them, FFmpeg's ``libav.*``
    and the web server's included; the CLI calls this once logging is configured.
    """
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(secrets))


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with a :class:`RedactingFilter` attached (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
