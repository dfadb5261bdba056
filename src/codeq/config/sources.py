"""Reading the sources (YAML file, environment, flags) into values by setting, with every problem met."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import yaml

from codeq.config.keys import (
    HTTP,
    LIMITS,
    PERSISTENCE,
    PERSISTENCE_CONFIG_ENV,
    RATE,
    RATE_KEY_BY,
    RATE_SCOPES,
    SECTIONS,
    TOP,
    UNSUPPORTED_MODES,
    Key,
    Kind,
    unused_environment,
)
from codeq.config.raft import from_env as raft_from_env
from codeq.config.raft import from_yaml as raft_from_yaml

# One logger for the whole package: log filters on `codeq.config` see every config message.
log = logging.getLogger("codeq.config")

# A flag names a setting by its dotted target or by its environment name in snake case.
_BY_TARGET = {key.target: key for key in (*TOP, *PERSISTENCE, *LIMITS, *HTTP, *RATE)}
_BY_TARGET["dev"] = Key("dev", "dev", None, "bool")
_BY_FLAG = {key.env.lower(): key for key in (*TOP, *LIMITS, *HTTP, *RATE) if key.env is not None}
_FLAG_ALIASES = {
    "data_path": "store.path",
    "num_shards": "store.num_shards",
    "shard_processes": "store.shard_processes",
    "fsync_on_commit": "store.fsync_on_commit",
    "provider": "store.provider",
}
MISSING = object()
_TYPES: dict[str, type] = {"str": str, "bool": bool}
# spec 04 gap 5: names compared later are normalised once, on the way in.
_PROVIDERS = ("store.provider", "auth.producer.provider", "auth.worker.provider")
_NORMALISED = frozenset(("env", "log.level", "log.format", *_PROVIDERS))
_NOUNS = {"str": "a string", "bool": "true or false", "int": "an integer", "float": "a number"}


class Sources:
    """Values by target, later sources overwriting earlier ones, and every problem met on the way.

    Unlike the reference, a value that does not parse is a problem, never silently ignored.
    """

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.problems: list[str] = []

    def yaml_file(self, path: str) -> None:
        # Unlike the reference, a file named explicitly must exist: a typo must not mean "defaults".
        try:
            with open(path, encoding="utf-8") as handle:
                doc = yaml.safe_load(handle)
        except FileNotFoundError:
            self.problems.append(f"config file {path} does not exist")
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            self.problems.append(f"config file {path} cannot be read: {exc}")
        else:
            if isinstance(doc, dict):
                self.document(doc)
            elif doc is not None:
                self.problems.append(f"config file {path} must contain a mapping")

    def document(self, doc: dict[Any, Any]) -> None:
        for key in TOP:
            if key.yaml in doc:
                self.put(key, doc[key.yaml], key.yaml)
        for name, keys in (("persistenceConfig", PERSISTENCE), ("limits", LIMITS), ("http", HTTP)):
            if name in doc:
                self.section(doc[name], keys, name)
        if "rateLimit" in doc:
            self.rate_limit(doc["rateLimit"])
        if doc.get("raft") is not None:
            self.raft(raft_from_yaml(doc["raft"], self.problems))
        for name, _, message in UNSUPPORTED_MODES:
            block = doc.get(name)
            if isinstance(block, dict) and block.get("enabled") is True:
                self.problems.append(message)
        known = {key.yaml for key in TOP} | set(SECTIONS)
        unused = sorted(str(k) for k in doc if k not in known)
        if unused:
            log.warning("config file keys not used by codeq: %s", ", ".join(unused))

    def rate_limit(self, value: object) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            self.problems.append("rateLimit must be a mapping")
            return
        for name, raw in value.items():
            if name == RATE_KEY_BY.yaml:
                self.put(RATE_KEY_BY, raw, "rateLimit.keyBy")
            elif name in RATE_SCOPES:
                self.section(raw, RATE_SCOPES[name], f"rateLimit.{name}")
            else:
                self.problems.append(f"rateLimit: unknown key {name!r}")

    def section(self, value: object, keys: tuple[Key, ...], where: str) -> None:
        """A nested mapping; spec 04 gap 3: `persistenceConfig` may also be a JSON string."""
        if isinstance(value, str) and keys is PERSISTENCE:
            value = self.json(value, where)
        if value is None or value is MISSING:
            return
        if not isinstance(value, dict):
            self.problems.append(f"{where} must be a mapping")
            return
        by_name = {key.yaml: key for key in keys}
        for name, raw in value.items():
            key = by_name.get(name)
            if key is None:
                self.problems.append(f"{where}: unknown key {name!r}")
            else:
                self.put(key, raw, f"{where}.{name}")

    def environment(self, env: Mapping[str, str]) -> None:
        for key in (*TOP, *LIMITS, *HTTP, *RATE):
            # An empty variable counts as unset: compose files often write `NAME=` for "default".
            if key.env is not None and env.get(key.env, ""):
                self.put(key, env[key.env], key.env, from_env=True)
        if env.get(PERSISTENCE_CONFIG_ENV, ""):
            self.section(env[PERSISTENCE_CONFIG_ENV], PERSISTENCE, PERSISTENCE_CONFIG_ENV)
        for _, variable, message in UNSUPPORTED_MODES:
            if variable is not None and _env_bool(env.get(variable, "")):
                self.problems.append(message)
        self.raft(raft_from_env(env, self.problems))
        unused = unused_environment(env)
        if unused:
            log.warning("environment variables not used by codeq: %s", ", ".join(unused))

    def raft(self, values: dict[str, object]) -> None:
        self.values.update({f"raft.{name}": value for name, value in values.items()})

    def overrides(self, overrides: Mapping[str, object]) -> None:
        for name, raw in overrides.items():
            key = _BY_TARGET.get(_FLAG_ALIASES.get(name, name)) or _BY_FLAG.get(name)
            if key is None:
                self.problems.append(f"unknown override {name!r}")
            else:
                self.put(key, raw, "--" + name.replace("_", "-"))

    def put(self, key: Key, raw: object, where: str, *, from_env: bool = False) -> None:
        value = self.coerce(key.kind, raw, where, from_env=from_env)
        if isinstance(value, str) and key.target in _NORMALISED:
            value = value.strip().lower()
        # An unparsable auth config stays marked, so validation does not add "missing config" to it.
        if value is not MISSING or key.kind == "json":
            self.values[key.target] = value

    def coerce(self, kind: Kind, raw: object, where: str, *, from_env: bool) -> object:
        if kind == "json":
            return self.json(raw, where) if isinstance(raw, str) else raw
        if kind == "bool" and from_env and isinstance(raw, str):
            return _env_bool(raw)
        value = _typed(kind, raw)
        if value is None:
            self.problems.append(f"{where} must be {_NOUNS[kind]}, got {str(raw)[:40]!r}")
            return MISSING
        return value

    def json(self, text: object, where: str) -> object:
        try:
            return json.loads(str(text))
        except ValueError:
            # The text may hold a secret (an auth config): name the source, never echo it.
            self.problems.append(f"{where} is not valid JSON")
            return MISSING


def _typed(kind: Kind, raw: object) -> object:
    """`raw` as `kind`, or None. bool is an int subclass, but `port: true` is a mistake, not 1."""
    if kind in ("str", "bool") or isinstance(raw, bool):
        return raw if type(raw) is _TYPES.get(kind) else None
    number = int if kind == "int" else float
    if isinstance(raw, str):
        try:
            return number(raw.strip())
        except ValueError:
            return None
    if isinstance(raw, int) or (kind == "float" and isinstance(raw, float)):
        return number(raw)
    return None


def _env_bool(text: str) -> bool:
    return text.strip().lower() in ("true", "yes", "1")
