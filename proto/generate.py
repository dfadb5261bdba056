"""Regenerates src/codeq/wire/pb from the .proto files here (run by `make proto`)."""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent
OUT_DIR = PROTO_DIR.parent / "src" / "codeq" / "wire" / "pb"
# protoc writes `import x_pb2` as if the output directory were on sys.path; inside a package
# the sibling module has to be imported relatively.
_BARE_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def main() -> int:
    sources = sorted(PROTO_DIR.glob("*.proto"))
    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_DIR}",
                f"-I{well_known}",
                f"--python_out={tmp}",
                f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}",
                *(str(source) for source in sources),
            ]
        )
        if status != 0:
            return int(status)
        for generated in sorted(Path(tmp).iterdir()):
            text = _BARE_IMPORT.sub(r"from . import \1 as \2", generated.read_text())
            (OUT_DIR / generated.name).write_text(text)
            print(f"wrote {(OUT_DIR / generated.name).relative_to(PROTO_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
