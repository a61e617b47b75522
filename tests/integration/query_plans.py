"""SQLite's EXPLAIN QUERY PLAN of the statements a piece of read code runs (for the tests that
hold a read to its indexes)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event


def plans(engine, run: Callable[[], object], keep: Callable[[str], bool]) -> list[str]:
    """The plan of each statement `run` executes that `keep` accepts, in order."""
    captured = []

    def capture(conn, cur, stmt, params, *a):
        captured.append((stmt, params))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    with engine.connect() as conn:
        return [
            "\n".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + stmt, params))
            for stmt, params in captured
            if keep(stmt)
        ]
