"""The intake's retry strategy after a failed group commit (webhook.batcher.after_failure)."""
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from webhook.batcher import Retry, after_failure


def refused() -> IntegrityError:
    return IntegrityError("INSERT ...", {}, Exception("NOT NULL constraint failed"))


def test_a_refused_batch_with_marks_riding_along_is_tried_again_without_them():
    assert after_failure(refused(), 5, with_marks=True) is Retry.WITHOUT_MARKS
    assert after_failure(refused(), 1, with_marks=True) is Retry.WITHOUT_MARKS


def test_a_refused_batch_of_several_is_stored_a_delivery_at_a_time():
    assert after_failure(refused(), 2, with_marks=False) is Retry.EACH_ALONE


def test_a_refused_delivery_alone_is_answered_with_the_error():
    assert after_failure(refused(), 1, with_marks=False) is Retry.GIVE_UP


def test_an_unreachable_database_is_never_tried_again():
    down = OperationalError("INSERT ...", {}, Exception("disk I/O error"))
    lost = ProgrammingError("INSERT ...", {}, Exception("gone"), connection_invalidated=True)
    for error in (down, lost):
        assert after_failure(error, 5, with_marks=True) is Retry.GIVE_UP


def test_an_error_that_is_not_the_databases_is_never_tried_again():
    assert after_failure(RuntimeError("bug"), 5, with_marks=True) is Retry.GIVE_UP
    assert after_failure(TimeoutError(), 5, with_marks=False) is Retry.GIVE_UP
