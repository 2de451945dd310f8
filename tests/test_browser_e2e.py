"""The real ComfyUI front end, in headless Chromium, offers, adds and loads the pack's nodes.

Debian's ``chromium`` is driven by the ``playwright`` PyPI package through
``executable_path`` (``playwright install`` is never run: it would download a browser).
The page comes from the same kind of server as test_server_e2e (tests/server_fixture.py).
Screenshots go to test-output/screenshots/frontend-<version>/. Without chromium or playwright
the tests skip on a contributor machine and fail in CI.

The checks a user sees (workflows load, presets, ignored inputs greyed out, help pages) run in
both renderers of the front end: the classic canvas and "Nodes 2.0" (Vue components, setting
``Comfy.VueNodes.Enabled``), the latter from front end 1.37.11 (ComfyUI 0.12.1): the
experimental Nodes 2.0 of earlier front ends (1.32.9) copies widget options once, so it cannot
show an input that becomes ignored.
"""

import importlib.metadata
import json
import os
import re
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
NODES_2_SETTING = "Comfy.VueNodes.Enabled"   # "Modern Node Design (Nodes 2.0)"
NODES_2_SINCE = (1, 37, 11)
RENDERERS = ["classic", "nodes2"]
HELP_PAGES = REPO_ROOT / "web" / "docs"
# GAG Settings inputs that each mode ignores (greyed out by web/js/gag.js)
IGNORED_IN = {"PLADIS": {"lam", "zeta", "tau", "cap"}, "GAG": {"pladis_scale"}}


def chromium_executable() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


def front_end_version() -> tuple[int, ...]:
    return tuple(int(part) for part in importlib.metadata.version("comfyui_frontend_package").split(".")[:3])


def first_sentence_words(markdown: str, count: int = 5) -> str:
    """The first words of a help page's first paragraph, as the rendered page shows them."""
    paragraph = next(line for line in markdown.splitlines() if line.strip() and not line.startswith("#"))
    return " ".join(re.sub(r"[*_`]", "", paragraph).split()[:count])


class FrontEnd:
    """A page of the ComfyUI front end, and the gestures the tests make on it, in either renderer:
    the classic canvas (widgets drawn by LiteGraph) or Nodes 2.0 (each node a Vue component)."""

    def __init__(self, page):
        self.page = page
        self.console = []
        self.renderer = None
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))

    def use_renderer(self, renderer: str) -> None:
        """Switch the front end's "Nodes 2.0" setting (the server keeps it) and clear the graph."""
        if renderer != self.renderer:
            self.page.evaluate("async ([name, on]) => await app.extensionManager.setting.set(name, on)",
                               [NODES_2_SETTING, renderer == "nodes2"])
            self.page.wait_for_timeout(500)
            self.renderer = renderer
        self.clear_graph()

    def node_id(self, node_type: str):
        return self.page.evaluate("(type) => app.graph.nodes.find(n => n.type === type).id", node_type)

    def vue_widget(self, node_type: str, widget: str):
        """The Nodes 2.0 row of a widget of the first node of ``node_type``."""
        rows = self.page.locator(f'[data-node-id="{self.node_id(node_type)}"] .lg-node-widget')
        return rows.filter(has=self.page.locator(f'[aria-label="{widget}"]')).first

    def choose(self, node_type: str, widget: str, option: str) -> None:
        """Pick ``option`` in a combo widget, as a user does: the canvas opens LiteGraph's menu,
        Nodes 2.0 a drop-down list."""
        if self.renderer == "nodes2":
            self.vue_widget(node_type, widget).locator(".p-select").first.click()
            self.page.locator(".p-select-option").filter(has_text=re.compile(f"^{re.escape(option)}$")).first.click()
        else:
            point = self.canvas_point(node_type, widget)
            self.page.mouse.click(point["x"], point["y"])
            self.page.locator(".litecontextmenu .litemenu-entry").filter(has_text=option).first.click()
        self.page.wait_for_timeout(300)

    def step(self, node_type: str, widget: str, direction: int) -> None:
        """Press a number widget's increment (+1) or decrement (-1) control once."""
        if self.renderer == "nodes2":
            buttons = self.vue_widget(node_type, widget).locator("button")
            buttons.nth(0 if direction > 0 else 1).click()
        else:
            point = self.canvas_point(node_type, widget, edge=direction)
            self.page.mouse.click(point["x"], point["y"])
        self.page.wait_for_timeout(300)

    def toggle(self, node_type: str, widget: str) -> None:
        """Flip a boolean widget with a click."""
        if self.renderer == "nodes2":
            self.vue_widget(node_type, widget).locator(".p-toggleswitch").first.click()
        else:
            point = self.canvas_point(node_type, widget)
            self.page.mouse.click(point["x"], point["y"])
        self.page.wait_for_timeout(300)

    def looks_disabled(self, node_type: str, widget: str) -> bool:
        """Whether the renderer shows the widget disabled: the canvas draws it at half opacity
        (``computedDisabled``, set while drawing); Nodes 2.0 disables its input element."""
        if self.renderer == "nodes2":
            return self.vue_widget(node_type, widget).locator("input").first.is_disabled()
        return self.page.evaluate("""([type, name]) => {
            app.canvas.draw(true, true);
            return app.graph.nodes.find(n => n.type === type).widgets.find(w => w.name === name).computedDisabled
        }""", [node_type, widget])

    def select_node(self, node_type: str) -> None:
        """Bring the node to the middle of the view and click its title, which selects it and shows
        the selection toolbox above it."""
        self.page.evaluate("""(type) => {
            app.canvas.centerOnNode(app.graph.nodes.find(n => n.type === type));
            app.canvas.setDirty(true, true);
        }""", node_type)
        self.page.wait_for_timeout(300)
        if self.renderer == "nodes2":
            self.page.locator(f'[data-node-id="{self.node_id(node_type)}"] [data-testid="node-title"]').click()
        else:
            point = self.page.evaluate("""(type) => {
                const node = app.graph.nodes.find(n => n.type === type);
                const [x, y] = app.canvas.ds.convertOffsetToCanvas(
                    [node.pos[0] + 40, node.pos[1] - LiteGraph.NODE_TITLE_HEIGHT / 2]);
                const box = app.canvas.canvas.getBoundingClientRect();
                return {x: box.left + x, y: box.top + y};
            }""", node_type)
            self.page.mouse.click(point["x"], point["y"])
        self.page.wait_for_timeout(300)

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

    def canvas_point(self, node_type: str, widget: str, edge: int = 0) -> dict:
        """Screen position of a widget of the first node of ``node_type`` on the canvas: its middle,
        or its left (``edge`` -1) or right (+1) arrow, where LiteGraph steps numbers."""
        return self.page.evaluate("""([type, name, edge]) => {
            const node = app.graph.nodes.find(n => n.type === type);
            const widget = node.widgets.find(w => w.name === name);
            const x = edge < 0 ? 25 : edge > 0 ? node.size[0] - 25 : node.size[0] / 2;
            const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([node.pos[0] + x, node.pos[1] + widget.y + 10]);
            const box = app.canvas.canvas.getBoundingClientRect();
            return {x: box.left + cx, y: box.top + cy};
        }""", [node_type, widget, edge])

    def widget_value(self, node_type: str, widget: str):
        return self.page.evaluate("""([type, name]) =>
            app.graph.nodes.find(n => n.type === type).widgets.find(w => w.name === name).value""",
                                  [node_type, widget])

    def screenshot(self, name: str) -> None:
        """Save a screenshot under test-output/screenshots/frontend-<version>/."""
        folder = SCREENSHOTS / f"frontend-{'.'.join(map(str, front_end_version()))}"
        folder.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(folder / name))


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
def front_end_with_log(front_end, server, request):
    """The front end, with its console printed when the test failed."""
    failed_before = request.session.testsfailed
    yield front_end
    if request.session.testsfailed > failed_before:
        print("--- browser console ---", *front_end.console[-50:], sep="\n")


@pytest.fixture(scope="module", params=RENDERERS)
def renderer(request):
    if request.param == "nodes2" and front_end_version() < NODES_2_SINCE:
        pytest.skip(f"Nodes 2.0 is tested from front end {'.'.join(map(str, NODES_2_SINCE))} "
                    f"(this is {'.'.join(map(str, front_end_version()))})")
    return request.param


@pytest.fixture
def ui(front_end_with_log, renderer):
    """The front end in the renderer under test, with an empty graph."""
    front_end_with_log.use_renderer(renderer)
    return front_end_with_log


@pytest.fixture
def classic_ui(front_end_with_log):
    """The front end with the classic canvas, for what does not depend on the renderer."""
    front_end_with_log.use_renderer("classic")
    return front_end_with_log


def test_templates_dialog_offers_the_pack_examples(classic_ui):
    """The path the README gives: Comfy menu (the logo) → Browse Templates → Extensions → the pack."""
    ui = classic_ui
    ui.page.locator(".comfy-menu-button-wrapper").first.click()
    ui.page.get_by_role("menuitem").filter(has_text="Browse Templates").first.click()
    dialog = ui.dialogs("Templates")
    dialog.get_by_text("Extensions", exact=False).first.wait_for(timeout=10_000)
    dialog.get_by_text(PACK_LINK_NAME, exact=True).first.click()
    for path in EXAMPLES:
        dialog.get_by_text(path.stem, exact=True).first.wait_for(timeout=10_000)
    ui.screenshot("templates-dialog.png")
    ui.close_dialogs()


def test_node_search_offers_and_adds_the_gag_nodes(classic_ui):
    ui = classic_ui
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
    if ui.renderer == "nodes2":  # every node is drawn as a Vue component
        assert ui.page.locator("[data-node-id]").count() == len(workflow["nodes"])
    ui.close_dialogs()
    ui.screenshot(f"workflow-{path.stem}-{ui.renderer}.png")


def test_missing_node_dialog_is_detected(classic_ui):
    """Control for the test above: a shipped workflow with one node type renamed raises the
    dialog that test looks for."""
    ui = classic_ui
    workflow = json.loads(EXAMPLES[0].read_text())
    next(node for node in workflow["nodes"] if node["type"] == "ApplyGAG")["type"] = "GAGNoSuchNode"
    ui.load(workflow)
    ui.dialogs(MISSING_NODES_TEXT).first.wait_for(timeout=10_000)
    ui.screenshot("missing-node-control.png")
    ui.close_dialogs()


def load_sdxl_example(ui):
    ui.load(json.loads((REPO_ROOT / "example_workflows" / "gag_sdxl_base.json").read_text()))
    ui.close_dialogs()  # the Missing Models dialog (the example's checkpoint is not on this server)


def assert_widgets(ui, values: dict) -> None:
    for name, value in values.items():
        expected = pytest.approx(value) if isinstance(value, float) else value
        assert ui.widget_value("GAGSettings", name) == expected, name


def test_preset_fills_the_widgets_and_its_label_follows_edits(ui):
    presets = json.loads(PRESETS.read_text())["presets"]
    load_sdxl_example(ui)
    assert ui.widget_value("GAGSettings", "preset") == "SDXL"  # the example's preset, recognised on load
    preset = next(p for p in presets if p["values"]["lam"] != ui.widget_value("GAGSettings", "lam"))
    ui.choose("GAGSettings", "preset", preset["name"])
    assert_widgets(ui, preset["values"])
    ui.screenshot(f"preset-applied-{ui.renderer}.png")

    def shown_label():
        if ui.renderer == "nodes2":
            return ui.vue_widget("GAGSettings", "preset").locator(".p-select-label").inner_text().strip()
        return ui.widget_value("GAGSettings", "preset")  # what the canvas draws

    assert shown_label() == preset["name"]
    ui.step("GAGSettings", "lam", +1)  # an edit: the values match no preset any more
    assert ui.widget_value("GAGSettings", "lam") > preset["values"]["lam"]
    assert shown_label() == "custom"
    ui.step("GAGSettings", "lam", -1)  # and back
    assert ui.widget_value("GAGSettings", "lam") == pytest.approx(preset["values"]["lam"])
    assert shown_label() == preset["name"]
    ui.choose("GAGSettings", "mode", "PLADIS")
    assert shown_label() == "custom"


def test_ignored_inputs_are_visibly_disabled(ui):
    load_sdxl_example(ui)  # GAG mode, cap on
    for mode, cap in (("PLADIS", True), ("GAG", True), ("GAG", False)):
        if ui.widget_value("GAGSettings", "mode") != mode:
            ui.choose("GAGSettings", "mode", mode)
        if ui.widget_value("GAGSettings", "cap") != cap:
            ui.toggle("GAGSettings", "cap")
        ignored = IGNORED_IN[mode] | ({"tau"} if mode == "GAG" and not cap else set())
        for name in ("lam", "zeta", "tau", "cap", "pladis_scale"):
            assert ui.looks_disabled("GAGSettings", name) == (name in ignored), (mode, cap, name)
    ui.screenshot(f"ignored-inputs-{ui.renderer}.png")


@pytest.mark.parametrize("node_id", ["GAGSettings", "ApplyGAG"])
def test_help_page_opens_from_the_selection_toolbox(ui, node_id):
    load_sdxl_example(ui)
    ui.select_node(node_id)
    ui.page.locator('[data-testid="info-button"]').first.click()
    words = first_sentence_words((HELP_PAGES / f"{node_id}.md").read_text(encoding="utf-8"))
    ui.page.get_by_text(words).first.wait_for(timeout=10_000)
    ui.screenshot(f"help-{node_id}-{ui.renderer}.png")
    ui.page.keyboard.press("Escape")
