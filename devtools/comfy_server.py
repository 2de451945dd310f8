"""A ComfyUI server in a child process, started by devtools/launch.py, and a small HTTP client.

Used by ``launch.py --demo`` and the end-to-end tests. The server runs loopback-only on a
free port; its output goes to ``HOME/server.log``. Startup is awaited by polling
``/system_stats``; ``stop()`` ends the child's whole process group.

    with ComfyServer(home, stand_in=True) as server:
        prompt_id = server.queue_prompt(prompt)
        entry = server.wait_for(prompt_id)
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

LAUNCHER = pathlib.Path(__file__).resolve().parent / "launch.py"


class ServerError(RuntimeError):
    """The server did not start, died, or a prompt failed; the message carries the log tail."""


class PromptRejected(RuntimeError):
    """``/prompt`` answered 400; ``.body`` is its JSON (``error``, ``node_errors``)."""

    def __init__(self, body: dict):
        super().__init__(json.dumps(body))
        self.body = body


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ComfyServer:
    """ComfyUI on 127.0.0.1:``port`` with ``--base-directory home`` and this pack loaded.

    stand_in: also load devtools/tiny_stand_in. cpu: force ``--cpu`` (the default; tests
    and the demo run tiny models).
    """

    def __init__(self, home, *, port=None, stand_in=False, cpu=True):
        self.home = pathlib.Path(home)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.home / "server.log"
        self.client_id = uuid.uuid4().hex
        self.startup_seconds = None
        self._command = [sys.executable, str(LAUNCHER), "--home", str(self.home), "--port", str(self.port)]
        if stand_in:
            self._command.append("--stand-in")
        if cpu:
            self._command.append("--cpu")
        self._process = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def start(self, timeout: float = 180.0) -> None:
        """Spawn the server and wait until ``/system_stats`` answers (ServerError otherwise)."""
        self.home.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(self._command, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        while time.monotonic() - began < timeout:
            if self._process.poll() is not None:
                raise ServerError(f"ComfyUI exited with {self._process.returncode} during startup\n{self.log_tail()}")
            try:
                self.get_json("/system_stats", timeout=2)
                self.startup_seconds = time.monotonic() - began
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.25)
        self.stop()
        raise ServerError(f"ComfyUI did not answer /system_stats within {timeout:.0f} s\n{self.log_tail()}")

    def stop(self) -> None:
        """Terminate the server's process group; kill it when it does not exit within 10 s."""
        if self._process is None or self._process.poll() is not None:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def log_tail(self, chars: int = 6000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else "(no log)"
        return f"--- {self.log_path} (last {chars} chars) ---\n{text[-chars:]}"

    def _request(self, path, body=None, timeout=30.0):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data,
                                         headers={"Content-Type": "application/json"} if data else {})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def get_json(self, path: str, timeout: float = 30.0):
        return json.loads(self._request(path, timeout=timeout))

    def post_json(self, path: str, body):
        return json.loads(self._request(path, body) or b"null")

    def get_bytes(self, path: str) -> bytes:
        return self._request(path)

    def object_info(self) -> dict:
        return self.get_json("/object_info")

    def queue_prompt(self, prompt: dict) -> str:
        """Submit an API-format prompt; returns its id, raises PromptRejected on a 400."""
        try:
            answer = self.post_json("/prompt", {"prompt": prompt, "client_id": self.client_id})
        except urllib.error.HTTPError as error:
            if error.code != 400:
                raise
            raise PromptRejected(json.loads(error.read())) from None
        return answer["prompt_id"]

    def validate(self, prompt: dict) -> dict:
        """What the server's own validation says of an API-format prompt, without queueing it:
        ``valid``, ``error``, ``outputs``, ``node_errors``. Needs the stand-in pack (its route
        ``/gag_stand_in/validate``, devtools/tiny_stand_in)."""
        return self.post_json("/gag_stand_in/validate", {"prompt": prompt})

    def wait_for(self, prompt_id: str, timeout: float = 120.0) -> dict:
        """Poll ``/history`` until the prompt finished; returns its entry (ServerError if it failed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get_json(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                if entry["status"].get("status_str") != "success":
                    messages = json.dumps(entry["status"].get("messages"), indent=1)
                    raise ServerError(f"prompt {prompt_id} failed: {messages}\n{self.log_tail()}")
                return entry
            if self._process.poll() is not None:
                raise ServerError(f"ComfyUI exited with {self._process.returncode}\n{self.log_tail()}")
            time.sleep(0.2)
        raise ServerError(f"prompt {prompt_id} did not finish within {timeout:.0f} s\n{self.log_tail()}")

    def view(self, file: dict) -> bytes:
        """The bytes of an output file as listed in a history entry (filename, subfolder, type)."""
        query = urllib.parse.urlencode({key: file[key] for key in ("filename", "subfolder", "type")})
        return self.get_bytes(f"/view?{query}")
