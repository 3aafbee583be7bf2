"""The API's front door: which clients, hosts and origins it answers, and the headers every
response carries. One pure ASGI middleware (``SecurityMiddleware``), in this order:

1. **Trusted host** (against DNS rebinding): the ``Host`` header must name a loopback host
   (``localhost``), be an IP literal (an address cannot be rebound), be the configured
   ``server.host`` or be listed in ``server.allowed_hosts``; otherwise 400.
2. **Loopback only without keys**: while no API key is required (none created yet, or
   ``auth.enabled: false``) the caller must be on this machine (127.0.0.0/8, ::1) unless the
   operator set ``auth.open: true``; otherwise 403.
3. **Same origin for changes**: a POST, PUT, PATCH or DELETE whose ``Sec-Fetch-Site`` is
   there and is not ``same-origin``/``none``, or whose ``Origin`` is there and is neither the
   request's own origin nor in ``server.allowed_origins``, is refused (403) before it runs.
   Callers that send neither header (curl, httpx, other services) are not browsers and pass.
4. **Headers** on every response: a strict Content-Security-Policy, ``nosniff``,
   ``X-Frame-Options: DENY`` and ``Referrer-Policy: no-referrer``.

The policy comes from the service (its settings and work-order store) when the app's lifespan
has built it; until then the strictest one applies (loopback names only, no keys known).
docs/security.md explains the threat model.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridworker.keystore import KeyStore
from gridworker.settings import ServerConfig

LOOPBACK_NAMES = frozenset({"localhost"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Cache-Control of evidence (snapshots, clips, handlers' and residents' photos): a browser may
#: keep it, a shared cache (a proxy or CDN in front) never may: a request authenticated by the
#: session cookie carries no ``Authorization`` header, which is all that keeps shared caches off.
EVIDENCE_CACHE = "private, max-age=3600"
SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": 80, "https": 443}
HTTP_SCHEME = {"http": "http", "https": "https", "ws": "http", "wss": "https"}

#: The console and the API: only this origin's own files, no inline script or style.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_IMG_SRC = "img-src 'self' data: blob:"
_PLAIN_ORIGIN = re.compile(r"https?://[a-z0-9_.\-]+(:[0-9]{1,5})?|https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?")
#: FastAPI's /docs and /redoc pages load Swagger UI / ReDoc from a CDN and start them with an
#: inline script; their HTML is fixed (nothing from a request is in it), so this looser policy
#: is for those two pages only.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
COMMON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)

NO_KEY_MESSAGE = (
    "no API key exists yet: this service answers only loopback clients; "
    "create one with `gridworker keys create --role admin --name ...` (or set auth.open: true, docs/security.md)"
)
KEYS_OFF_MESSAGE = (
    "API keys are switched off (auth.enabled: false): this service answers only loopback clients "
    "(set auth.open: true to answer others, docs/security.md)"
)


# -- addresses and names --------------------------------------------------------------------
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_loopback_address(host: str | None) -> bool:
    """Whether a client address is this machine (127.0.0.0/8, ::1, ::ffff:127.x)."""
    ip = _ip(host) if host else None
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def is_loopback_bind(host: str) -> bool:
    """Whether a bind address (``server.host``) is reachable from this machine only."""
    return host.strip().lower().rstrip(".") in LOOPBACK_NAMES or is_loopback_address(host)


def split_host(header: str) -> tuple[str, int | None] | None:
    """``Host`` header → (lower-case name or address without brackets, port); None if malformed."""
    header = header.strip().lower()
    if not header or any(c in header for c in "/@?#\\ "):
        return None
    if header.startswith("["):
        end = header.find("]")
        if end < 0:
            return None
        name, rest = header[1:end], header[end + 1 :]
        if _ip(name) is None:
            return None
    else:
        name, sep, port_text = header.rpartition(":") if header.count(":") == 1 else (header, "", "")
        if not sep:
            name = header
        rest = f":{port_text}" if sep else ""
    port: int | None = None
    if rest:
        if not rest.startswith(":") or not rest[1:].isdigit() or not 0 < int(rest[1:]) < 65536:
            return None
        port = int(rest[1:])
    name = name.rstrip(".")
    return (name, port) if name else None


def origin_key(scheme: str, name: str, port: int | None) -> str:
    """``scheme://host:port`` with the default port filled in (how two origins are compared)."""
    host = f"[{name}]" if ":" in name else name
    return f"{scheme}://{host}:{port if port is not None else DEFAULT_PORTS.get(scheme, 0)}"


def parse_origin(value: str) -> str | None:
    """An ``Origin`` (or configured origin) → ``origin_key``; None when it is not one."""
    parts = urlsplit(value.strip().lower())
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.path not in ("", "/"):
        return None
    return origin_key(parts.scheme, parts.hostname.rstrip("."), port)


# -- the policy -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SecurityPolicy:
    """What the middleware admits. ``keys`` None: no key store, treated as "no keys"."""

    hosts: frozenset[str] = frozenset()
    origins: frozenset[str] = frozenset()
    keys: KeyStore | None = None
    #: the console map's tile server (``console.map.tiles_url``'s origin): images may come from it too
    tile_origin: str | None = None

    @classmethod
    def of(
        cls, *, server_host: str | None, allowed_hosts: list[str], allowed_origins: list[str], keys: KeyStore | None,
        tile_origin: str | None = None,
    ) -> SecurityPolicy:
        hosts = {h.strip().lower().rstrip(".") for h in allowed_hosts}
        if server_host:
            hosts.add(server_host.strip().strip("[]").lower().rstrip("."))
        origins = {o for o in (parse_origin(v) for v in allowed_origins) if o is not None}
        # only a plain http(s) origin goes into the header: nothing that could end the directive
        tiles = tile_origin.strip().lower() if tile_origin and _PLAIN_ORIGIN.fullmatch(tile_origin.strip().lower()) else None
        return cls(frozenset(hosts), frozenset(origins), keys, tiles if tiles and parse_origin(tiles) else None)

    def csp(self) -> str:
        """The console's Content-Security-Policy: :data:`CSP`, with the map's tile server among the image sources."""
        return CSP if self.tile_origin is None else CSP.replace(_IMG_SRC, f"{_IMG_SRC} {self.tile_origin}", 1)

    def host_allowed(self, name: str) -> bool:
        return name in LOOPBACK_NAMES or _ip(name) is not None or name in self.hosts

    def open(self) -> bool:
        return self.keys is not None and self.keys.auth_open


@dataclass
class SecurityGuard:
    """The middleware's policy, set by the app's lifespan once the service exists."""

    policy: SecurityPolicy = field(default_factory=SecurityPolicy)

    def configure(self, *, server: ServerConfig | None, keys: KeyStore | None, tile_origin: str | None = None) -> None:
        """Answer as ``server:`` says (None: loopback names only) with the API keys of ``keys``;
        ``tile_origin``: the console map's tile server, whose images the console may show."""
        self.policy = SecurityPolicy.of(
            server_host=server.host if server is not None else None,
            allowed_hosts=list(server.allowed_hosts) if server is not None else [],
            allowed_origins=list(server.allowed_origins) if server is not None else [],
            keys=keys,
            tile_origin=tile_origin,
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class SecurityMiddleware:
    """See the module docstring. Install it with ``app.add_middleware(SecurityMiddleware, guard=...)``."""

    def __init__(self, app: ASGIApp, guard: SecurityGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = await self._refusal(scope)
        csp = (DOCS_CSP if scope.get("path") in DOCS_PATHS else self.guard.policy.csp()).encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or ())
                present = {bytes(k).lower() for k, _ in headers}
                for key, value in ((b"content-security-policy", csp), *COMMON_HEADERS):
                    if key not in present:
                        headers.append((key, value))
                message["headers"] = headers
            await send(message)

        if refusal is None:
            await self.app(scope, receive, send_with_headers)
            return
        code, detail = refusal
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"detail": detail}).encode()
        await send_with_headers(
            {"type": "http.response.start", "status": code,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
        )
        await send({"type": "http.response.body", "body": body})

    async def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        policy = self.guard.policy
        # 1. the Host header names this service
        raw_host = _header(scope, b"host")
        host = split_host(raw_host) if raw_host is not None else None
        if host is None:
            return 400, "a valid Host header is required"
        if not policy.host_allowed(host[0]):
            return 400, (
                f"this service does not answer to the host name {host[0][:100]!r}: "
                "add it to server.allowed_hosts in the config (docs/security.md)"
            )
        # 2. without keys, only this machine
        client = scope.get("client")
        if not policy.open() and not is_loopback_address(client[0] if client else None):
            keys = policy.keys
            if keys is None or not await run_in_threadpool(keys.auth_required):
                keys_off = keys is not None and keys.auth_enabled is False
                return 403, KEYS_OFF_MESSAGE if keys_off else NO_KEY_MESSAGE
        # 3. state changes come from this origin, not another site's page
        if scope["type"] == "http" and scope.get("method", "GET").upper() in STATE_CHANGING:
            site = _header(scope, b"sec-fetch-site")
            if site is not None and site.strip().lower() not in SAME_ORIGIN_FETCH:
                return 403, f"cross-site request refused (Sec-Fetch-Site: {site.strip()[:40]})"
            origin = _header(scope, b"origin")
            if origin is not None:
                own = origin_key(HTTP_SCHEME.get(str(scope.get("scheme")), "http"), host[0], host[1])
                got = parse_origin(origin)
                if got is None or (got != own and got not in policy.origins):
                    return 403, (
                        f"cross-origin request refused (Origin {origin.strip()[:100]!r} is not this service's origin); "
                        "add a trusted origin to server.allowed_origins (docs/security.md)"
                    )
        return None
