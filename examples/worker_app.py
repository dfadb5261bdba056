"""An application module for `codeq worker examples.worker_app:worker` (see README, "Running workers").

Run a server and this worker, then create tasks:

    codeq serve --dev --memory &
    CODEQ_TOKEN=dev-worker codeq worker examples.worker_app:worker --concurrency 4
    codeq task create resize --payload '{"width": 640}' --token dev-producer
"""

from __future__ import annotations

import time

from codeq.client import Job, Worker

# No URL or token here: they come from `--url`/`--token`, or from $CODEQ_URL and $CODEQ_TOKEN.
worker = Worker(concurrency=2, lease_seconds=30)


@worker.handler("resize")
def resize(job: Job) -> dict[str, int]:
    """A quick task: its return value is the task's result."""
    return {"width": job.payload["width"] // 2}


@worker.handler("sleep")
def sleep(job: Job) -> dict[str, float]:
    """A slow task: stop the worker while it runs and the task is handed back, not lost."""
    seconds = float(job.payload["seconds"])
    time.sleep(seconds)
    return {"slept": seconds}
