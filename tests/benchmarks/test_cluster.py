"""The scale-out benchmarks' plumbing that needs no server: the journal URLs they write."""

from __future__ import annotations

import psycopg.conninfo

from benchmarks.cluster import engine_settings, with_database


def test_a_scratch_database_keeps_the_server_and_credentials_of_the_url_given() -> None:
    assert with_database("postgresql:///test", "scratch") == "postgresql:///scratch"
    given = "postgresql://kassa:p%40ss@db.local:5433/test?sslmode=disable"
    assert with_database(given, "scratch") == (
        "postgresql://kassa:p%40ss@db.local:5433/scratch?sslmode=disable"
    )
    # through a proxy: the same credentials and options, another host and port
    proxied = with_database(given, "scratch", host="127.0.0.1", port=6000)
    assert psycopg.conninfo.conninfo_to_dict(proxied) == {
        "user": "kassa",
        "password": "p@ss",
        "host": "127.0.0.1",
        "port": "6000",
        "dbname": "scratch",
        "sslmode": "disable",
    }


def test_a_socket_folder_moves_into_the_query_where_a_url_can_hold_it() -> None:
    url = with_database("host=/var/run/postgresql port=5432 dbname=test user=root", "x")
    assert url.startswith("postgresql://root@:5432/x?")
    assert psycopg.conninfo.conninfo_to_dict(url)["host"] == "/var/run/postgresql"


def test_one_engine_writes_todays_kassa_toml_and_several_name_themselves() -> None:
    assert engine_settings(1, 0, 2.0) == {}
    assert engine_settings(3, 2, 2.0) == {"engine_id": "engine-2", "lease_seconds": 2.0}
