"""The SDK's public surface is deliberate: `codeq.client.__all__` is pinned, and nothing else leaks."""

from __future__ import annotations

import pkgutil
from types import ModuleType

import grimp
import pytest

import codeq.client

# Changing this list changes what users may rely on: do it on purpose, with the README.
PUBLIC = [
    "Abandon",
    "Admin",
    "Artifact",
    "AsyncAdmin",
    "AsyncProducer",
    "AsyncWorker",
    "BadRequest",
    "BatchIncomplete",
    "BatchItemError",
    "CodeqError",
    "Conflict",
    "ConnectionFailed",
    "DlqPage",
    "Fail",
    "Forbidden",
    "Job",
    "Nack",
    "NotFound",
    "NotInProgress",
    "NotOwner",
    "PayloadTooLarge",
    "Producer",
    "QueueOverview",
    "QueueStats",
    "RateLimited",
    "Result",
    "ResultNotReady",
    "ResultSpec",
    "ServerError",
    "Subscription",
    "Task",
    "TaskCancelled",
    "TaskPage",
    "TaskSpec",
    "Transport",
    "Unauthorized",
    "Unavailable",
    "Worker",
    "WorkerSettings",
    "WorkerStats",
    "connect",
]


def test_all_is_the_pinned_list() -> None:
    assert codeq.client.__all__ == PUBLIC


def test_every_public_name_imports_and_is_defined_inside_the_sdk() -> None:
    namespace: dict[str, object] = {}
    exec("from codeq.client import *", namespace)  # what a user's star import gets
    assert sorted(name for name in namespace if name != "__builtins__") == sorted(PUBLIC)
    for name in PUBLIC:
        value = getattr(codeq.client, name)
        assert getattr(value, "__module__", "").startswith("codeq.client._"), name


def test_nothing_but_the_public_names_is_exposed() -> None:
    # As httpx and trio do: every module behind the names is private, so the package's
    # namespace holds exactly `__all__` plus underscored names.
    exposed = sorted(name for name in vars(codeq.client) if not name.startswith("_"))
    assert exposed == sorted(PUBLIC)


def _submodules(package: ModuleType) -> list[str]:
    return [info.name for info in pkgutil.iter_modules(package.__path__)]


def test_every_module_of_the_sdk_is_private() -> None:
    names = _submodules(codeq.client)
    assert names and all(name.startswith("_") for name in names), names


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("codeq")


def test_no_import_cycle_inside_the_sdk(graph: grimp.ImportGraph) -> None:
    modules = {m for m in graph.modules if m.startswith(("codeq.client.", "codeq.h1."))}
    cycles = [
        (a, b)
        for a in sorted(modules)
        for b in graph.find_modules_directly_imported_by(a)
        if b in modules and graph.find_shortest_chain(importer=b, imported=a) is not None
    ]
    assert cycles == []


def test_the_cli_uses_only_the_public_sdk(graph: grimp.ImportGraph) -> None:
    reached = {
        (cli, imported)
        for cli in graph.find_children("codeq.cli") | {"codeq.cli"}
        for imported in graph.find_modules_directly_imported_by(cli)
        if imported.startswith("codeq.client")
    }
    assert reached and all(imported == "codeq.client" for _, imported in reached), sorted(reached)
