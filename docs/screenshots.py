"""Write the widget's screenshots at a CRM sidebar's width (360 px): docs/widget.png,
docs/widget-payments.png, docs/widget-currencies.png, docs/widget-dark.png (dark mode) and
docs/widget-ageing.png (the ageing bar and the payment-behaviour sentence).

Runs the browser tests that take them (tests/browser/test_widget.py::test_screenshots,
tests/browser/test_widget_layout.py::test_screenshots and
tests/browser/test_widget_ageing.py::test_screenshot) with WIDGET_SCREENSHOTS=docs, against
the real app, a fresh SQLite database and Debian's Chromium.

    .venv/bin/python docs/screenshots.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    env = {**os.environ, "WIDGET_SCREENSHOTS": "docs"}
    env.pop("DATABASE_URL", None)
    tests = [
        "tests/browser/test_widget.py::test_screenshots",
        "tests/browser/test_widget_layout.py::test_screenshots",
        "tests/browser/test_widget_ageing.py::test_screenshot",
    ]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    sys.exit(subprocess.call(command, cwd=ROOT, env=env))
