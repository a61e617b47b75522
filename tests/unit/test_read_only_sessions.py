"""store.db.read_only_sessions: on SQLite, reads that never queue behind a writer's lock."""
import time

from sqlalchemy import event, text

from store import db


def sqlite_sessions(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    with db.transaction(db.make_sessionmaker(engine)) as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
    return engine, db.make_sessionmaker(engine)


def begins(engine) -> list[str]:
    seen: list[str] = []
    def begins(conn, cursor, statement, *rest):
        if statement.startswith("BEGIN"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", begins)
    return seen


def test_read_only_sessions_begin_deferred_and_others_stay_immediate(tmp_path):
    engine, sessions = sqlite_sessions(tmp_path)
    seen = begins(engine)
    with db.read_only_sessions(sessions)() as session:
        assert session.execute(text("SELECT x FROM t")).scalar() == 1
    with db.transaction(sessions) as session:
        session.execute(text("INSERT INTO t VALUES (2)"))
    assert seen == ["BEGIN", "BEGIN IMMEDIATE"]
    engine.dispose()


def test_a_read_only_session_reads_the_last_commit_while_a_writer_holds_the_lock(tmp_path):
    engine, sessions = sqlite_sessions(tmp_path)
    writer = engine.connect()
    writer.begin()  # BEGIN IMMEDIATE
    writer.execute(text("INSERT INTO t VALUES (2)"))
    try:
        started = time.monotonic()
        with db.read_only_sessions(sessions)() as session:
            assert session.execute(text("SELECT count(*) FROM t")).scalar() == 1
        assert time.monotonic() - started < 1.0
    finally:
        writer.rollback()
        writer.close()
    engine.dispose()


def test_read_only_sessions_keep_the_factory_settings(tmp_path):
    engine, sessions = sqlite_sessions(tmp_path)
    reads = db.read_only_sessions(sessions)
    assert reads.kw["expire_on_commit"] is False
    assert reads.kw["bind"].pool is engine.pool  # same connections, no second engine
    engine.dispose()


def test_elsewhere_read_only_sessions_are_the_sessions():
    engine = db.make_engine("postgresql://app:app@127.0.0.1:1/none")  # never connected
    sessions = db.make_sessionmaker(engine)
    assert db.read_only_sessions(sessions) is sessions
