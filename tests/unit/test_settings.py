"""infra/settings.py: the environment read once, the budget, worker and web settings nested in it."""
from __future__ import annotations

import pytest

from infra.settings import Settings, WebServer, WorkerOptions, XeroLimits


def test_nothing_set_gives_every_nested_default():
    settings = Settings.from_env({})
    assert (settings.xero_limits, settings.worker, settings.web) == (XeroLimits(), WorkerOptions(), WebServer())


def test_the_worker_options_keep_their_types():
    env = {"RETRY_ATTEMPTS": "3", "RELAY_SECONDS": "0.5", "WORKER_MAINTENANCE_SECONDS": " 5 "}
    worker = Settings.from_env(env).worker
    assert (worker.retry_attempts, worker.relay_seconds, worker.maintenance_seconds) == (3, 0.5, 5)
    assert isinstance(worker.retry_attempts, int) and isinstance(worker.relay_seconds, float)


def test_a_day_limit_given_is_never_learned():
    limits = Settings.from_env({"XERO_DAY_LIMIT": "1000", "XERO_CONCURRENT_LIMIT": "2"}).xero_limits
    assert (limits.per_day, limits.day_limit_set, limits.concurrent) == (1000, True, 2)


def test_an_access_log_set_empty_is_none_and_unset_is_stderr():
    assert Settings.from_env({}).web.access_log == "-"
    assert Settings.from_env({"WEB_ACCESS_LOG": ""}).web.access_log is None


def test_the_intake_writer_is_a_process_unless_in_process_and_nothing_else():
    assert Settings.from_env({"INTAKE_WRITER": " "}).web.intake_writer == "process"
    assert Settings.from_env({"INTAKE_WRITER": "in-process"}).web.intake_writer == "in-process"
    with pytest.raises(RuntimeError, match="INTAKE_WRITER must be 'process' or 'in-process', not 'thread'"):
        Settings.from_env({"INTAKE_WRITER": "thread"})
