"""What the deployment tests share: the repo's paths, the server's env names, the Dockerfile's parts."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from codeq.config import key_table

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent


def server_env_names() -> frozenset[str]:
    """Every environment name `codeq serve` reads: the config package's key table."""
    return frozenset(key.env for key in key_table() if key.env is not None)


def tool(name: str) -> str:
    """A command-line tool the dev extra installs next to this interpreter (hadolint, docker-compose)."""
    path = shutil.which(name, path=str(BIN))
    assert path is not None, f"{name} is missing: run `make install` (it comes with the dev extra)"
    return path


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str  # upper case, e.g. "ENV"
    arguments: str  # continuation lines joined, comments dropped


def dockerfile_instructions(path: Path) -> list[Instruction]:
    """The Dockerfile's instructions in order, with backslash continuations joined."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions after the last FROM: what the image that runs is made of."""
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    return instructions[starts[-1] :]


def image_env(stage: list[Instruction]) -> dict[str, str]:
    """ENV `key=value` pairs, unquoted as Docker does (shell-like words)."""
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            for word in shlex.split(ins.arguments):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def exec_form(stage: list[Instruction], keyword: str) -> list[str]:
    """The JSON (exec) form of ENTRYPOINT or CMD; the shell form is refused on purpose."""
    (argument,) = [ins.arguments for ins in stage if ins.keyword == keyword][-1:]
    words = json.loads(argument)
    assert isinstance(words, list), f"{keyword} must use the exec form"
    return [str(word) for word in words]


def healthcheck_command(stage: list[Instruction]) -> list[str]:
    (argument,) = [ins.arguments for ins in stage if ins.keyword == "HEALTHCHECK"]
    _, _, command = argument.partition("CMD ")
    words = json.loads(command)
    return [str(word) for word in words]
