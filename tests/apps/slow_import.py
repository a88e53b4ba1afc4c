"""worker_probe's app behind an import that takes IMPORT_S seconds: a worker that is
still importing its apps (no event loop yet, no signal handlers of its own)."""

import time

from worker_probe import app, note

IMPORT_S = 2.0
note("import-begin")
time.sleep(IMPORT_S)

__all__ = ["app"]
