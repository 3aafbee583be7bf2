"""``gridworker keys``: bootstrap, list and revoke keys from the command line."""

import logging

import yaml

from gridworker.api.auth import verify_key
from gridworker.cli import main
from gridworker.incidents.db import Database
from gridworker.keystore import KeyStore


def _keys(url):
    return KeyStore(Database.open(url))


def test_create_list_revoke(tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "var" / "gw.db"
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{db}"}}), encoding="utf-8")

    assert main(["keys", "create", "--config", str(config), "--role", "admin", "--name", "ops lead"]) == 0
    out, err = capsys.readouterr()
    raw = out.strip()
    assert raw.startswith("gwk_") and out.count("\n") == 1  # stdout: the key alone, for scripts
    assert raw not in err and "not shown again" in err
    keys = _keys(f"sqlite:///{db}")
    key = verify_key(keys, raw)
    assert key is not None and (key.role, key.name) == ("admin", "ops lead")

    assert main(["keys", "create", "--database", f"sqlite:///{db}", "--role", "unit_handler", "--unit", "community-grid", "--name", "grid 3"]) == 0
    handler_raw = capsys.readouterr().out.strip()
    assert verify_key(keys, handler_raw).unit == "community-grid"

    assert main(["keys", "list", "--config", str(config)]) == 0
    listing = capsys.readouterr().out
    assert "ops lead" in listing and "grid 3" in listing and "community-grid" in listing
    assert raw not in listing and raw[17:] not in listing and handler_raw[17:] not in listing

    # the last admin key cannot be revoked (the API would be left with nobody to manage it)
    assert main(["keys", "revoke", "--config", str(config), str(key.id)]) == 3
    assert "last admin key" in capsys.readouterr().err and verify_key(keys, raw) is not None
    assert main(["keys", "create", "--config", str(config), "--role", "admin", "--name", "deputy"]) == 0
    deputy_raw = capsys.readouterr().out.strip()
    assert main(["keys", "revoke", "--config", str(config), str(key.id)]) == 0
    assert verify_key(keys, raw) is None and verify_key(keys, deputy_raw) is not None
    assert main(["keys", "revoke", "--config", str(config), str(key.id)]) == 1
    assert main(["keys", "list", "--config", str(config)]) == 0
    assert "ops lead" not in capsys.readouterr().out
    assert main(["keys", "list", "--config", str(config), "--all"]) == 0
    assert "ops lead" in capsys.readouterr().out

    # nothing of either key in the database file or the logs
    keys.db.close()
    data = b"".join(p.read_bytes() for p in db.parent.glob("gw.db*"))
    for k in (raw, handler_raw):
        assert k[17:].encode() not in data
        assert k[17:] not in caplog.text


def test_refusals(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    assert main(["keys", "create", "--database", url, "--role", "unit_handler", "--name", "x"]) == 2
    assert "needs --unit" in capsys.readouterr().err
    assert main(["keys", "create", "--database", url, "--role", "unit_handler", "--unit", "nope", "--name", "x"]) == 2
    assert "unknown unit 'nope'" in capsys.readouterr().err
    assert main(["keys", "create", "--role", "admin", "--name", "x"]) == 2
    assert "--config or --database" in capsys.readouterr().err
    assert main(["keys", "create", "--config", str(tmp_path / "missing.yaml"), "--role", "admin", "--name", "x"]) == 2
    assert capsys.readouterr().out == ""
    assert _keys(url).keys() == []
