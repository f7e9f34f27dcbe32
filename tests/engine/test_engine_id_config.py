"""kassa.toml's keys for several engines on one journal: ``[service] engine_id`` and
``lease_seconds`` (another helper's ``kassa bench faults --engines K`` writes them)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import zmq

from engine.service_config import ConfigError, load_config, write_certificate

CONFIG = """
[service]
listen = "tcp://127.0.0.1:0"
secret_key_file = "server.key_secret"
journal = "journal.db"
{extra}

[[tenants]]
id = "shop"
"""


def config(folder: Path, extra: str) -> Path:
    public, secret = zmq.curve_keypair()
    write_certificate(folder / "server", public, secret)
    path = folder / "kassa.toml"
    path.write_text(CONFIG.format(extra=extra))
    return path


def test_engine_id_and_lease_seconds_are_read_with_their_defaults(tmp_path: Path) -> None:
    engine = load_config(config(tmp_path, "")).engine
    assert engine.engine_id == f"{socket.gethostname()}:{os.getpid()}"
    assert engine.lease_seconds == 10.0
    (tmp_path / "two").mkdir()
    named = config(tmp_path / "two", 'engine_id = "kassa-2"\nlease_seconds = 2.5')
    engine = load_config(named).engine
    assert (engine.engine_id, engine.lease_seconds) == ("kassa-2", 2.5)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("lease_seconds = 0.1", "service.lease_seconds: expected seconds from 0.5 to 600, got 0.1"),
        ('lease_seconds = "10"', "service.lease_seconds: expected"),
        ('engine_id = ""', "service.engine_id: expected a name of 1 to 200 characters"),
        ("engine_id = 7", "service.engine_id: expected"),
    ],
)
def test_a_wrong_value_is_named_with_its_key(tmp_path: Path, extra: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config(config(tmp_path, extra))
