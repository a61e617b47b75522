"""Write docs/widget.png and docs/widget-payments.png: the widget at a CRM sidebar's width (380 px).

Runs the browser test that takes them (tests/browser/test_widget.py::test_screenshots) with
WIDGET_SCREENSHOTS=docs, against the real app, a fresh SQLite database and Debian's Chromium.

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
    test = "tests/browser/test_widget.py::test_screenshots"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test]
    sys.exit(subprocess.call(command, cwd=ROOT, env=env))
