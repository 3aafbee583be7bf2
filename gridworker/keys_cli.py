"""``gridworker keys``: create, list and revoke API keys in the service's database.

The first admin key is made here: ``POST /keys`` needs an admin *key*, never an anonymous
caller. The last admin key cannot be revoked (create another first), so revoking never
leaves a service nobody can manage. The key is printed once, on stdout, and nowhere else.

Example:
    gridworker keys create --config site.yaml --role admin --name "ops lead"
    gridworker keys create --database sqlite:///var/gridworker.db --role unit_handler --unit community-grid --name grid-7
    gridworker keys list --config site.yaml
    gridworker keys revoke --config site.yaml 3
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from gridworker.cases.workflow import ROLES

if TYPE_CHECKING:
    from gridworker.keystore import KeyStore


def _open(args: argparse.Namespace) -> KeyStore | None:
    """The key store of the configured database, with the catalogue (a unit handler's unit
    must be in it); None after printing why not."""
    from gridworker.cases.catalogue import CatalogueError, load_catalogue
    from gridworker.cases.workorders import WorkOrdersConfig

    url = args.database
    catalogue_path = args.catalogue
    if args.config:
        from .settings import ConfigError, load_settings

        try:
            settings = load_settings(args.config)
        except ConfigError as exc:
            print(f"gridworker: {exc}", file=sys.stderr)
            return None
        url = url or settings.database.url
        cfg = getattr(settings, "workorders", None) or WorkOrdersConfig()
        catalogue_path = catalogue_path or cfg.catalogue
    if not url:
        print("gridworker keys: give --config or --database", file=sys.stderr)
        return None
    try:
        catalogue = load_catalogue(catalogue_path)
    except CatalogueError as exc:
        print(f"gridworker: {exc}", file=sys.stderr)
        return None
    from gridworker.incidents.db import Database
    from gridworker.keystore import KeyStore

    return KeyStore(Database.open(url), catalogue)


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _with_keys(command: Callable[[argparse.Namespace, KeyStore], int]) -> Callable[[argparse.Namespace], int]:
    """``command`` run on the opened key store, which is closed after it; 2 when it cannot be
    opened (why is printed)."""

    def run(args: argparse.Namespace) -> int:
        keys = _open(args)
        if keys is None:
            return 2
        try:
            return command(args, keys)
        finally:
            keys.db.close()

    return run


def _cmd_create(args: argparse.Namespace, keys: KeyStore) -> int:
    from gridworker.api.auth import KeyError_, create_key

    try:
        stored, raw = create_key(keys, name=args.name, role=args.role, unit=args.unit)
    except KeyError_ as exc:
        print(f"gridworker keys: {exc}", file=sys.stderr)
        return 2
    unit = f" for unit {stored.unit}" if stored.unit else ""
    print(f"created key {stored.id} ({stored.key_id}) {stored.role}{unit}: {stored.name}", file=sys.stderr)
    print("store it now; it is not shown again:", file=sys.stderr)
    print(raw)
    return 0


def _cmd_list(args: argparse.Namespace, keys: KeyStore) -> int:
    print(f"{'id':>4}  {'key id':12}  {'role':12}  {'unit':18}  {'created':20}  {'last used':20}  {'revoked':20}  name")
    for k in keys.keys(include_revoked=args.all):
        print(
            f"{k.id:>4}  {k.key_id:12}  {k.role:12}  {k.unit or '-':18}  {_when(k.created_at):20}  "
            f"{_when(k.last_used_at):20}  {_when(k.revoked_at):20}  {k.name}"
        )
    return 0


def _cmd_revoke(args: argparse.Namespace, keys: KeyStore) -> int:
    import time

    from gridworker.keystore import LastAdminKey

    try:
        ok = keys.revoke_key(args.id, time.time())
    except LastAdminKey as exc:
        print(f"gridworker keys: {exc}", file=sys.stderr)
        return 3
    if not ok:
        print(f"gridworker keys: no unrevoked key {args.id}", file=sys.stderr)
        return 1
    print(f"revoked key {args.id}", file=sys.stderr)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", help="the service's YAML config (its database and catalogue)")
    p.add_argument("--database", help="database URL (instead of, or over, the config's)")
    p.add_argument("--catalogue", help="catalogue YAML (to check --unit); default: the config's or the shipped one")


def register(sub: Any) -> None:
    """Add ``keys`` to the ``gridworker`` command's sub-parsers."""
    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)

    p = ksub.add_parser("create", help="create a key and print it (once)")
    _common(p)
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--unit", help="the unit a unit_handler key is bound to")
    p.add_argument("--name", required=True, help="who or what holds the key")
    p.set_defaults(func=_with_keys(_cmd_create))

    p = ksub.add_parser("list", help="list keys (never the keys themselves)")
    _common(p)
    p.add_argument("--all", action="store_true", help="include revoked keys")
    p.set_defaults(func=_with_keys(_cmd_list))

    p = ksub.add_parser("revoke", help="revoke a key by its id")
    _common(p)
    p.add_argument("id", type=int)
    p.set_defaults(func=_with_keys(_cmd_revoke))
