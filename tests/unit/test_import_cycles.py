"""No import cycles in src/codeq: between the modules of a package, nor between its subpackages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grimp

# A cycle found is allowed only inside one of these named sets, and an entry that no cycle needs
# fails: a new entry must say why the cycle is acceptable. There are none.
ALLOWED_CYCLES: dict[str, frozenset[str]] = {}


def strongly_connected(nodes: Iterable[str], edges: Mapping[str, set[str]]) -> list[frozenset[str]]:
    """The components of more than one node (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
            elif target not in index:
                index[target] = low[target] = len(index)
                stack.append(target)
                on_stack.add(target)
                work.append((target, iter(sorted(edges.get(target, ())))))
            elif target in on_stack:
                low[node] = min(low[node], index[target])
    return found


def sibling_cycles(graph: grimp.ImportGraph) -> list[frozenset[str]]:
    """For every package, the cycles among its children, a subpackage standing for all it holds.

    This sees module cycles (siblings in one package) and package cycles, such as one made only
    by an import under `TYPE_CHECKING` (grimp counts those, and so does this test).
    """
    cycles: list[frozenset[str]] = []
    for package in sorted(graph.modules):
        children = graph.find_children(package)
        if len(children) < 2:
            continue
        edges: dict[str, set[str]] = {}
        for child in children:
            sources = {child} | graph.find_descendants(child)
            for source in sources:
                for target in graph.find_modules_directly_imported_by(source):
                    owner = _child_holding(target, children)
                    if owner is not None and owner != child:
                        edges.setdefault(child, set()).add(owner)
        cycles += strongly_connected(children, edges)
    return cycles


def _child_holding(module: str, children: set[str]) -> str | None:
    for child in children:
        if module == child or module.startswith(child + "."):
            return child
    return None


def test_strongly_connected_finds_cycles_and_only_cycles() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert strongly_connected("abcde", edges) == [frozenset("abc")]


def test_no_import_cycles_outside_the_allow_list() -> None:
    cycles = sibling_cycles(grimp.build_graph("codeq", cache_dir=None))
    unexpected = [sorted(c) for c in cycles if not any(c <= allowed for allowed in ALLOWED_CYCLES.values())]
    assert unexpected == [], f"import cycles: {unexpected}"
    stale = [name for name, allowed in ALLOWED_CYCLES.items() if not any(c <= allowed for c in cycles)]
    assert stale == [], f"these cycles are gone: remove them from ALLOWED_CYCLES: {stale}"
