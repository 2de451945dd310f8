"""What a new user meets in the real front end (headless Chromium, front end 1.32.9 on CI):
plain widget labels, node search by plain words, the menus the README names, download offers
for missing models, a refused Run naming the bad input, and the diagnostics chart in a preview.

Uses the browser and server fixtures of test_browser_e2e.py; screenshots go to
test-output/screenshots/ (polish-*.png).
"""

import json

import pytest

from devtools.comfy_host import REPO_ROOT
from devtools.launch import PACK_LINK_NAME
import test_browser_e2e
from server_fixture import comfy_server_fixture, server_fixture  # noqa: F401  (fixtures)

EXAMPLES = REPO_ROOT / "example_workflows"
STAND_IN = "GAGTinyCheckpointLoader"
# test_browser_e2e's browser fixtures, registered here under the same names
front_end = test_browser_e2e.front_end
front_end_with_log = test_browser_e2e.front_end_with_log
classic_ui = test_browser_e2e.classic_ui


@pytest.fixture
def ui(classic_ui):
    """The front end with the classic canvas: what these tests check does not depend on the renderer."""
    return classic_ui


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def on_stand_in(workflow: dict, **settings) -> dict:
    """The SDXL example on the test-only tiny loader: 128 px, 4 steps, GAG Settings widgets changed."""
    from comfyui_gag.nodes.definitions import SETTINGS_WIDGETS

    names = [widget.name for widget in SETTINGS_WIDGETS]
    for node in workflow["nodes"]:
        if node["type"] == "CheckpointLoaderSimple":
            node.update(type=STAND_IN, widgets_values=[], properties={})
        elif node["type"] == "EmptyLatentImage":
            node["widgets_values"] = [128, 128, 1]
        elif node["type"] == "KSampler":
            node["widgets_values"][2] = 4
        elif node["type"] == "GAGSettings":
            for name, value in settings.items():
                node["widgets_values"][names.index(name)] = value
    return workflow


def run_button(ui):
    return ui.page.locator("button:has-text('Run')").first


def test_gag_settings_shows_plain_labels_and_keeps_input_names(ui, pack):
    ui.load(example("gag_sdxl_base"))
    ui.close_dialogs()
    widgets = dict(ui.page.evaluate("""() => app.graph.nodes.find(n => n.type === 'GAGSettings')
        .widgets.map(w => [w.name, w.label ?? w.name])"""))
    assert widgets["lam"] == "strength (λ)" and widgets["tau"] == "max step (τ)"
    assert widgets["alpha"] == "sparsity (α)"
    assert widgets["mode"] == "method" and widgets["start_percent"] == "start_percent"
    saved = ui.page.evaluate("() => app.graph.serialize().nodes.find(n => n.type === 'GAGSettings')"
                             ".widgets_values")
    assert saved[:3] == [5.0, 0.0, 15.0]  # values still saved by position, under the same node
    ui.screenshot("polish-gag-settings-labels.png")


def test_node_search_finds_the_nodes_by_plain_words(ui):
    """Front end 1.32.9 searches node names and display names only (later ones also read
    search_aliases): 'guidance', 'attention guidance' and 'pladis' must find the nodes."""
    expected = {"guidance": "Apply GAG Attention Guidance", "attention guidance": "Apply GAG Attention Guidance",
                "pladis": "GAG Settings (GAG / PLADIS)", "GAG": "GAG Settings (GAG / PLADIS)"}
    for query, title in expected.items():
        ui.clear_graph()
        ui.page.mouse.dblclick(640, 500, delay=30)
        search = ui.page.get_by_placeholder("Search Nodes...")
        search.wait_for(timeout=10_000)
        search.fill(query)
        ui.page.locator(".p-autocomplete-option").filter(has_text=title).first.wait_for(timeout=10_000)
        if query == "attention guidance":
            ui.screenshot("polish-node-search-attention-guidance.png")
        ui.page.keyboard.press("Escape")
        search.wait_for(state="hidden", timeout=10_000)


def test_templates_are_where_the_readme_says(ui):
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "**Templates** in the left sidebar" in readme and "**Browse Templates**" in readme
    assert "**Extensions** → **ComfyUI-GAG**" in readme
    ui.page.locator(".comfy-menu-button-wrapper").first.click()  # the C menu (its logo)
    ui.page.get_by_role("menuitem", name="Browse Templates").first.wait_for(timeout=10_000)
    ui.page.keyboard.press("Escape")
    ui.page.locator("button[aria-label='Templates']").first.click()  # the sidebar button
    dialog = ui.dialogs("Templates")
    dialog.get_by_text("Extensions", exact=True).first.wait_for(timeout=10_000)
    dialog.get_by_text(PACK_LINK_NAME, exact=True).first.click()
    dialog.get_by_text("gag_sdxl_base", exact=True).first.wait_for(timeout=10_000)
    ui.screenshot("polish-templates-extensions.png")
    ui.close_dialogs()


def test_missing_models_are_offered_for_download(ui):
    workflow = example("gag_flux1_dev")
    ui.load(workflow)
    dialog = ui.dialogs("Missing Models")
    dialog.first.wait_for(timeout=10_000)
    text = dialog.first.inner_text()
    for node in workflow["nodes"]:
        for model in node.get("properties", {}).get("models", []):
            assert f"{model['directory']} / {model['name']}" in text
    assert text.count("Download") == 4 and "not allowed" not in text and "Invalid directory" not in text
    ui.screenshot("polish-missing-models.png")
    ui.close_dialogs()


def test_run_with_unreadable_blocks_is_refused_naming_the_input(ui, pack):
    ui.load(on_stand_in(example("gag_sdxl_base"), blocks="input 3"))
    ui.close_dialogs()
    run_button(ui).click()
    dialog = ui.dialogs("failed validation")
    dialog.first.wait_for(timeout=30_000)
    assert "blocks: cannot read '3' in 'input 3'" in dialog.first.inner_text()
    failed = ui.page.evaluate("() => Object.values(app.lastNodeErrors ?? {}).map(e => e.class_type)")
    assert failed == ["GAGSettings"]
    ui.screenshot("polish-run-refused.png")
    ui.close_dialogs()


def test_diagnostics_chart_in_a_preview(ui, pack):
    ui.load(on_stand_in(example("gag_sdxl_base"), start_percent=0.25, diagnostics=True))
    ui.close_dialogs()
    ui.page.evaluate("""() => {
        const graph = app.graph;
        const apply = graph.nodes.find(n => n.type === 'ApplyGAG');
        const sampler = graph.nodes.find(n => n.type === 'KSampler');
        const save = graph.nodes.find(n => n.type === 'SaveImage');
        const plot = LiteGraph.createNode('GAGDiagnosticsPlot');
        plot.pos = [sampler.pos[0], sampler.pos[1] + sampler.size[1] + 40];
        graph.add(plot);
        apply.connect(0, plot, 0);
        sampler.connect(0, plot, 1);
        const preview = LiteGraph.createNode('PreviewImage');
        preview.pos = [save.pos[0], save.pos[1] + save.size[1] + 40];
        preview.size = [...save.size];  // the size the example gives its Save Image node
        graph.add(preview);
        plot.connect(0, preview, 0);
    }""")
    run_button(ui).click()
    ui.page.wait_for_function("() => app.graph.nodes.find(n => n.type === 'PreviewImage')?.imgs?.length",
                              timeout=180_000)
    ui.page.evaluate("""() => {
        const preview = app.graph.nodes.find(n => n.type === 'PreviewImage');
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [300 - preview.pos[0], 150 - preview.pos[1]];
        app.canvas.setDirty(true, true);
    }""")
    ui.page.wait_for_timeout(800)
    size = ui.page.evaluate("() => { const img = app.graph.nodes.find(n => n.type === 'PreviewImage').imgs[0];"
                            " return [img.naturalWidth, img.naturalHeight]; }")
    assert size == [1024, 768]
    ui.screenshot("polish-diagnostics-preview.png")
