"""The keyring on a real SQLite journal: what it reads back at start, and what kassa.toml wins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zmq

from engine.http.credentials import AtolLogin, KomtetShop, verify_password
from engine.journal import SqliteJournal, TenantRecord
from engine.keyring import KIND, Keyring, KeyringError

TENANTS = {"shop": None, "other": None}
CONFIG_PUBLIC, _ = zmq.curve_keypair()
CONFIG_RAW = bytes(zmq.utils.z85.decode(CONFIG_PUBLIC))


def config_keyring(**changes: object) -> Keyring:
    options: dict[str, object] = {
        "clients": {CONFIG_RAW: "shop"},
        "atol_logins": {"toml-atol": AtolLogin("shop", "toml-atol", "scrypt$hash")},
        "komtet_shops": {"77": KomtetShop("shop", "77", "toml-secret")},
    }
    options.update(changes)
    return Keyring(password_cost=1 << 10, **options)  # type: ignore[arg-type]


async def test_made_and_revoked_keys_come_back_and_kassa_toml_wins_a_name(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    async with SqliteJournal.open(path) as journal:
        keyring = config_keyring()
        await keyring.load(journal, TENANTS)
        login = await keyring.make_atol("shop", "web")
        assert verify_password(login.secret, keyring.atol_logins["web"].password_hash)
        shop = await keyring.make_komtet("other", "88")
        curve = await keyring.make_curve("shop")
        assert keyring.clients[bytes(zmq.utils.z85.decode(curve.credential.name))] == "shop"
        assert await keyring.revoke("shop", "curve", CONFIG_PUBLIC.decode())
        assert await keyring.revoke("shop", "komtet", "77")
        assert not await keyring.revoke("shop", "komtet", "88")  # the other tenant's
        assert not await keyring.revoke("shop", "curve", "not a key")
        with pytest.raises(KeyringError) as taken:
            await keyring.make_atol("other", "toml-atol")
        assert taken.value.field == "login"
        # a record of a tenant no longer configured, and one nobody can read
        await journal.put_record(TenantRecord("gone", KIND, "atol:old", '{"kind": "atol"}'))
        await journal.put_record(TenantRecord("shop", KIND, "atol:bad", "not json"))
    async with SqliteJournal.open(path) as journal:
        # kassa.toml now gives "web" to the other tenant: the file wins, the record is skipped
        again = config_keyring(
            atol_logins={
                "toml-atol": AtolLogin("shop", "toml-atol", "scrypt$hash"),
                "web": AtolLogin("other", "web", "scrypt$other"),
            }
        )
        await again.load(journal, TENANTS)
        await again.load(journal, TENANTS)  # once per journal
        assert again.atol_logins["web"].tenant == "other"
        assert again.komtet_shops["88"] == KomtetShop("other", "88", shop.secret)
        assert "77" not in again.komtet_shops and CONFIG_RAW not in again.clients
        assert again.clients[bytes(zmq.utils.z85.decode(curve.credential.name))] == "shop"
        listed = {(c.kind, c.name, c.origin) for c in again.listing("shop")}
        assert listed == {
            ("atol", "toml-atol", "config"),
            ("curve", curve.credential.name, "cabinet"),
        }
        records = await journal.records(KIND, "shop")
        assert curve.secret not in json.dumps([r.value for r in records])
