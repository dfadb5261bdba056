"""Which installed distributions an extra of the wheel needs, and a directory holding only those."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def needed(requires: list[str], extras: set[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions that `requires` (a wheel's Requires-Dist) needs with `extras`,
    transitively, by canonical name. A needed one that is not installed raises."""
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(Requirement(line), extras) for line in requires]
    while todo:
        requirement, wanted = todo.pop()
        name = canonicalize_name(requirement.name)
        if not applies(requirement, wanted) or (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        dist = found.setdefault(name, metadata.distribution(requirement.name))
        todo += [(Requirement(line), set(requirement.extras)) for line in dist.requires or []]
    return found


def applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in extras or {""})


def link(dists: dict[str, metadata.Distribution], into: Path) -> None:
    """Symlink each distribution's top-level files and folders (its RECORD) into `into`."""
    into.mkdir(parents=True, exist_ok=True)
    for dist in dists.values():
        assert dist.files is not None, f"{dist.metadata['Name']} has no RECORD"
        for top in {f.parts[0] for f in dist.files if f.parts[0] != ".."}:
            target = into / top
            if not target.exists():
                target.symlink_to(Path(str(dist.locate_file(top))))
