"""The real ComfyUI server the end-to-end tests talk to (test_server_e2e, test_browser_e2e).

``comfy_server`` (module scope) starts ``main.py --cpu`` through devtools/launch.py on a
free loopback port, with ``--base-directory`` a fresh temporary home whose custom_nodes/
links this repository and the test-only stand-in pack (devtools/tiny_stand_in). Startup is
awaited by polling ``/system_stats``; the server is always stopped at teardown. Tests take
``server`` (function scope), which prints the server log when the test failed.

A test module registers both by importing them (the functions carry other names than the
fixtures, so test parameters do not shadow the imports):
``from server_fixture import comfy_server_fixture, server_fixture  # noqa: F401``.
A module whose server needs more (model files in its home) defines its own module-scoped
``comfy_server`` with ``running_server(home)`` and imports only ``server_fixture``.
"""

import contextlib
import os

import pytest

from devtools import comfy_host
from devtools.comfy_server import ComfyServer, ServerError


def unavailable(reason: str):
    """Skip on a contributor machine; fail in CI (CI=true), where everything must be present."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@contextlib.contextmanager
def running_server(home):
    """A started server with the stand-in pack on ``home`` (its ``--base-directory``), stopped on exit."""
    if comfy_host.comfyui_root() is None:
        unavailable("no ComfyUI tree: run scripts/setup-dev.sh or set COMFYUI_PATH")
    server = ComfyServer(home, stand_in=True)
    try:
        server.start()
    except ServerError as error:
        pytest.fail(str(error))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", name="comfy_server")
def comfy_server_fixture(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("comfyui-home")) as server:
        yield server


@pytest.fixture(name="server")
def server_fixture(comfy_server, request):
    failed_before = request.session.testsfailed
    yield comfy_server
    if request.session.testsfailed > failed_before:
        print(comfy_server.log_tail())
