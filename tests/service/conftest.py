"""The PostgreSQL fixtures of the engine's tests, for the doors on a shared journal."""

from tests.engine.conftest import empty_postgres, postgres_url

__all__ = ["empty_postgres", "postgres_url"]
