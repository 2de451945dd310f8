"""The real ComfyUI front end, in headless Chromium, offers, adds and loads the pack's nodes.

Debian's ``chromium`` is driven by the ``playwright`` PyPI package through
``executable_path`` (``playwright install`` is never run: it would download a browser).
The page comes from the same kind of server as test_server_e2e (tests/server_fixture.py).
Screenshots go to test-output/screenshots/. Without chromium or playwright the tests skip
on a contributor machine and fail in CI.
"""

import json
import os
import shutil

import pytest

from devtools.comfy_host import REPO_ROOT
from devtools.launch import PACK_LINK_NAME
from server_fixture import comfy_server_fixture, server_fixture, unavailable  # noqa: F401  (fixtures)

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = REPO_ROOT / "test-output" / "screenshots"
EXAMPLES = sorted((REPO_ROOT / "example_workflows").glob("*.json"))
PRESETS = REPO_ROOT / "web" / "presets.json"
WEB_EXTENSION = REPO_ROOT / "web" / "js" / "gag.js"
MISSING_NODES_TEXT = "missing nodes"   # the front end's dialog: "This workflow has missing nodes"
# close buttons: PrimeVue's dialog header, and the × of the Templates dialog
CLOSE_BUTTON = "button.p-dialog-close-button, button:has(> .pi-times)"
FRONT_END_READY = "() => window.app?.graph && window.LiteGraph && document.querySelector('#graph-canvas')"


def chromium_executable() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


class FrontEnd:
    """A page of the ComfyUI front end, and the few gestures the tests make on it."""

    def __init__(self, page):
        self.page = page
        self.console = []
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))

    def dialogs(self, text: str = ""):
        return self.page.locator(".p-dialog").filter(has_text=text)

    def close_dialogs(self) -> None:
        """Close every open dialog (first load shows the Templates dialog) with its × button."""
        while self.dialogs().count():
            self.dialogs().last.locator(CLOSE_BUTTON).first.click()
            self.page.wait_for_timeout(300)

    def alerts(self) -> list:
        """Texts of the toasts on screen (e.g. "Invalid workflow against zod schema")."""
        return self.page.locator(".p-toast-message").all_inner_texts()

    def clear_graph(self) -> None:
        self.page.evaluate("() => { app.graph.clear(); app.canvas.setDirty(true, true) }")

    def nodes(self) -> list:
        return self.page.evaluate("() => app.graph.nodes.map(node => node.type)")

    def load(self, workflow: dict) -> None:
        self.page.evaluate("async (workflow) => await app.loadGraphData(workflow)", workflow)
        self.page.wait_for_timeout(500)

    def canvas_point(self, node_type: str, widget: str) -> dict:
        """Screen position of a widget of the first node of ``node_type``."""
        return self.page.evaluate("""([type, name]) => {
            const node = app.graph.nodes.find(n => n.type === type);
            const widget = node.widgets.find(w => w.name === name);
            const [x, y] = app.canvas.ds.convertOffsetToCanvas(
                [node.pos[0] + node.size[0] / 2, node.pos[1] + widget.y + 10]);
            const box = app.canvas.canvas.getBoundingClientRect();
            return {x: box.left + x, y: box.top + y};
        }""", [node_type, widget])

    def widget_value(self, node_type: str, widget: str):
        return self.page.evaluate("""([type, name]) =>
            app.graph.nodes.find(n => n.type === type).widgets.find(w => w.name === name).value""",
                                  [node_type, widget])

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / name))


@pytest.fixture(scope="module")
def front_end(request, tmp_path_factory):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is missing: run scripts/setup-dev.sh")
    executable = chromium_executable()
    if executable is None:
        unavailable("no chromium on PATH: apt-get install chromium (scripts/setup-dev.sh does it as root)")
    comfy_server = request.getfixturevalue("comfy_server")  # started only once the browser is known
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=executable, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 800})
        try:
            ui = FrontEnd(context.pages[0] if context.pages else context.new_page())
            ui.page.goto(comfy_server.base_url)
            ui.page.wait_for_function(FRONT_END_READY, timeout=60_000)
            ui.page.wait_for_timeout(1000)  # the first-load Templates dialog opens a moment later
            ui.close_dialogs()
            yield ui
        finally:
            context.close()


@pytest.fixture
def ui(front_end, server, request):
    """The front end, with its console printed when the test failed."""
    failed_before = request.session.testsfailed
    yield front_end
    if request.session.testsfailed > failed_before:
        print("--- browser console ---", *front_end.console[-50:], sep="\n")


def test_templates_dialog_offers_the_pack_examples(ui):
    ui.page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    dialog = ui.dialogs("Templates")
    dialog.get_by_text(PACK_LINK_NAME, exact=True).first.click()
    for path in EXAMPLES:
        dialog.get_by_text(path.stem, exact=True).first.wait_for(timeout=10_000)
    ui.screenshot("templates-dialog.png")
    ui.close_dialogs()


def test_node_search_offers_and_adds_the_gag_nodes(ui):
    ui.clear_graph()
    ui.page.mouse.move(600, 450)
    ui.page.mouse.dblclick(640, 500, delay=30)
    search = ui.page.get_by_placeholder("Search Nodes...")
    search.wait_for(timeout=10_000)
    search.type("GAG")
    options = ui.page.locator(".p-autocomplete-option")
    for name in ("GAG Settings", "Apply GAG"):
        options.filter(has_text=name).first.wait_for(timeout=10_000)
    ui.screenshot("node-search.png")
    options.filter(has_text="Apply GAG").first.click()
    search.wait_for(state="hidden", timeout=10_000)
    assert ui.nodes() == ["ApplyGAG"]
    ui.screenshot("apply-gag-added.png")


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_shipped_workflow_loads_without_missing_nodes(ui, path):
    workflow = json.loads(path.read_text())
    ui.load(workflow)
    assert not ui.dialogs(MISSING_NODES_TEXT).count(), ui.dialogs(MISSING_NODES_TEXT).first.inner_text()
    assert ui.alerts() == []
    assert sorted(ui.nodes()) == sorted(node["type"] for node in workflow["nodes"])
    unregistered = ui.page.evaluate("() => app.graph.nodes.filter(n => !LiteGraph.registered_node_types[n.type])"
                                    ".map(n => n.type)")
    assert unregistered == []
    ui.close_dialogs()
    ui.screenshot(f"workflow-{path.stem}.png")


def test_missing_node_dialog_is_detected(ui):
    """Control for the test above: a shipped workflow with one node type renamed raises the
    dialog that test looks for."""
    workflow = json.loads(EXAMPLES[0].read_text())
    next(node for node in workflow["nodes"] if node["type"] == "ApplyGAG")["type"] = "GAGNoSuchNode"
    ui.load(workflow)
    ui.dialogs(MISSING_NODES_TEXT).first.wait_for(timeout=10_000)
    ui.screenshot("missing-node-control.png")
    ui.close_dialogs()


def test_preset_selector_sets_the_widgets(ui):
    if not WEB_EXTENSION.is_file():
        pytest.skip("web/js/gag.js is not in this checkout: no preset selector to exercise")
    presets = json.loads(PRESETS.read_text())["presets"]
    ui.load(json.loads((REPO_ROOT / "example_workflows" / "gag_sdxl_base.json").read_text()))
    ui.close_dialogs()  # the Missing Models dialog (the example's checkpoint is not on this server)
    before = ui.widget_value("GAGSettings", "lam")
    preset = next(p for p in presets if p["values"]["lam"] != before)
    point = ui.canvas_point("GAGSettings", "preset")
    ui.page.mouse.click(point["x"], point["y"])
    ui.page.locator(".litecontextmenu .litemenu-entry").filter(has_text=preset["name"]).first.click()
    for name, value in preset["values"].items():
        expected = pytest.approx(value) if isinstance(value, float) else value
        assert ui.widget_value("GAGSettings", name) == expected, name
    assert ui.widget_value("GAGSettings", "preset") == preset["name"]
    ui.screenshot("preset-applied.png")
