"""The extract suite's throw-away PostgreSQL and MariaDB databases, for the fault tests."""

from tests.extract.conftest import my, my_db, my_dsn, pg, pg_database, pg_dsn

__all__ = ["my", "my_db", "my_dsn", "pg", "pg_database", "pg_dsn"]
