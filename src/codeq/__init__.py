"""codeq: a durable, multi-tenant task queue."""

__version__ = "0.1.0"
# The name to `pip install` (the import name stays `codeq`): hints for missing extras use it.
DISTRIBUTION = "codeq-queue"
