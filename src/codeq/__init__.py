"""codeq: a durable, multi-tenant task queue."""

__version__ = "0.1.0"
