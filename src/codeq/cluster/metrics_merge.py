"""One metrics page out of every shard process's own: each family once, each sample labelled
with the shard of the process that reported it, so Prometheus scrapes one port."""

from __future__ import annotations

LABEL = "shard_process"


def merge_pages(pages: list[tuple[int, bytes]]) -> bytes:
    """`pages` as (shard, Prometheus text page); families keep the order of first appearance."""
    headers: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    for shard, page in pages:
        family = ""
        for line in page.decode().splitlines():
            if line.startswith("# "):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] == "HELP":
                    family = parts[2]
                    samples.setdefault(family, [])
                    headers.setdefault(family, [])
                if family and len(headers[family]) < 2 and line not in headers[family]:
                    headers[family].append(line)
                continue
            if line:
                samples.setdefault(family, []).append(labelled(line, f'{LABEL}="{shard}"'))
    lines: list[str] = []
    for family, found in samples.items():
        lines += headers.get(family, [])
        lines += found
    return ("\n".join(lines) + "\n").encode()


def labelled(sample: str, label: str) -> str:
    """A sample line with one more label: `name{a="b"} 1` -> `name{label,a="b"} 1`."""
    space = sample.find(" ")
    brace = sample.find("{")
    if 0 <= brace < space or (brace >= 0 and space < 0):
        return f"{sample[: brace + 1]}{label},{sample[brace + 1 :]}"
    return f"{sample[:space]}{{{label}}}{sample[space:]}"
