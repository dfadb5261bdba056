"""The composition root: the only importer of concrete adapters; starts and stops them in order."""

from codeq.app.lifecycle import Lifecycle
from codeq.app.process import App, Running
from codeq.app.shards import StartupReport, tune_gc

__all__ = ["App", "Lifecycle", "Running", "StartupReport", "tune_gc"]
