"""What test suites share: the database services (:mod:`.services`) and running the CLI (:mod:`.cli`).

``tests/`` is on ``sys.path`` while pytest runs (the rootdir conftest puts it there), so a test
module imports ``from testkit.services import pg_database``.
"""
