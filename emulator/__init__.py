"""A faithful in-memory emulator of the Xero API for tests, demos and benchmarks.

Run it with `python -m emulator --port 5055 --seed 1`, or in-process with
`emulator.testing.run_emulator()`. It imports nothing from the rest of the project.
"""

from .app import create_app
from .config import EmulatorConfig, FaultSettings, Limits
from .state import EmulatorState

__all__ = ["EmulatorConfig", "EmulatorState", "FaultSettings", "Limits", "create_app"]
