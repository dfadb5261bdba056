"""codeq: a durable, multi-tenant task queue."""

__version__ = "0.1.0"
# The name to `pip install` (the import name stays `codeq`): hints for missing extras use it.
DISTRIBUTION = "codeq-queue"

# Before any submodule is imported: the compiled hot path (ADR 0010) is used only while it
# matches its sources ("compiled"); otherwise every module loads from source and this says why.
from codeq.compiled import guard as _guard  # noqa: E402

NATIVE = _guard()
