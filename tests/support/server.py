"""Start and stop a real `codeq serve` process on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    def __init__(
        self, data: Path, *, args: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.data = data
        self.args = args or []
        self.env = env or {}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data.parent / f"server-{self.port}.log"
        self.ca_file: str | None = None  # set when the server serves TLS with a certificate it signed
        self.client_cert: tuple[str, str] | None = None  # (cert, key) when it asks for one

    @property
    def url(self) -> str:
        return f"{'https' if self.ca_file else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting: a Raft node is ready only once a majority is up."""
        command = [sys.executable, "-m", "codeq.cli.main", "serve", "--dev", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--data", str(self.data), *self.args]
        env = {**os.environ, "CODEQ_CONFIG_PATH": "", **self.env}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"codeq serve exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1, verify=self.verify()).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling for the process to come up, not waiting on queue behaviour
        raise TimeoutError(f"codeq serve did not become ready: {self.log.read_text()}")

    def verify(self) -> bool | ssl.SSLContext:
        """httpx's `verify` for this server: its CA and our client certificate, if any."""
        if self.ca_file is None:
            return True
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.client_cert is not None:
            context.load_cert_chain(*self.client_cert)
        return context

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
