// Front-end helpers for the GAG Settings node (ComfyUI front end 1.32+):
//  - a "preset" selector (front-end only: neither saved in widgets_values nor sent to the server;
//    the last chosen name is kept in node.properties.gag_preset, which the server never sees)
//  - a "GAG presets" submenu in the node's context menu
//  - widgets that have no effect in the current mode are greyed out and locked.
// The preset table lives in ../presets.json (the single source of truth, also read by the tests).
import { app } from "../../../scripts/app.js";

const NODE_ID = "GAGSettings";
const PRESET_WIDGET = "preset";
const CUSTOM = "custom";
const PRESET_PROPERTY = "gag_preset";

const presetsReady = fetch(new URL("../presets.json", import.meta.url))
  .then((response) => {
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  })
  .then((table) => table.presets)
  .catch((error) => {
    console.warn("[GAG] presets unavailable:", error);
    return [];
  });
let presets = [];

const widget = (node, name) => node.widgets?.find((w) => w.name === name);

function sameValue(a, b) {
  if (typeof a === "number" && typeof b === "number") return Math.abs(a - b) < 1e-6;
  if (typeof a === "string" && typeof b === "string") return a.trim().toLowerCase() === b.trim().toLowerCase();
  return a === b;
}

const matches = (node, preset) =>
  Object.entries(preset.values).every(([name, value]) => sameValue(widget(node, name)?.value, value));

/** Name of the preset the node's widgets match, or "custom". Several presets may share values: the
 * one last chosen (kept in node.properties, saved with the workflow, never sent) wins. */
function matchingPreset(node) {
  const chosen = presets.find((p) => p.name === node.properties?.[PRESET_PROPERTY]);
  if (chosen && matches(node, chosen)) return chosen.name;
  return presets.find((p) => matches(node, p))?.name ?? CUSTOM;
}

/** Grey out (and lock) widgets that the current mode ignores. The values stay and are still sent.
 * The canvas renderer reads widget.disabled; Nodes 2.0 (the Vue renderer) reads widget.options.disabled. */
function updateConstraints(node) {
  const pladis = widget(node, "mode")?.value === "PLADIS";
  const capOn = Boolean(widget(node, "cap")?.value);
  const ignored = {
    lam: pladis,
    zeta: pladis,
    cap: pladis,
    tau: pladis || !capOn,
    pladis_scale: !pladis,
  };
  for (const [name, off] of Object.entries(ignored)) {
    const w = widget(node, name);
    if (!w) continue;
    w.disabled = off;
    w.options ??= {};
    w.options.disabled = off;
  }
}

let labelling = false; // true while showPreset runs the selector's callback

/** Show `name` in the preset selector. Nodes 2.0 renders widgets from its own reactive state, which
 * it updates when a widget's callback runs, so the selector's callback is run too (and does nothing). */
function showPreset(node, name) {
  const selector = widget(node, PRESET_WIDGET);
  if (!selector) return;
  selector.value = name;
  labelling = true;
  try {
    selector.callback?.(name, app.canvas, node);
  } finally {
    labelling = false;
  }
}

function refresh(node) {
  updateConstraints(node);
  showPreset(node, matchingPreset(node));
  node.setDirtyCanvas?.(true, true);
}

function setWidgetValue(node, name, value) {
  const w = widget(node, name);
  if (!w) return;
  w.value = value;
  // Let the widget (and the Vue node renderer, which wraps callbacks) see the change.
  w.callback?.call(w, w.value, app.canvas, node);
}

function applyPreset(node, name) {
  const preset = presets.find((p) => p.name === name);
  if (!preset) return;
  node.properties ??= {};
  node.properties[PRESET_PROPERTY] = preset.name;
  for (const [key, value] of Object.entries(preset.values)) setWidgetValue(node, key, value);
  refresh(node);
}

function addPresetWidget(node) {
  if (!presets.length || widget(node, PRESET_WIDGET)) return;
  // Appended last on purpose: LiteGraph stores widgets_values by widget index, so a skipped
  // (serialize = false) widget before the real inputs would shift them.
  const selector = node.addWidget(
    "combo",
    PRESET_WIDGET,
    CUSTOM,
    (value) => {
      if (!labelling && value !== CUSTOM) applyPreset(node, value);
    },
    // options.serialize = false: graphToPrompt leaves it out of the prompt sent to the server
    { values: [CUSTOM, ...presets.map((p) => p.name)], serialize: false }
  );
  selector.serialize = false; // not stored in the workflow's widgets_values
  selector.tooltip = "Fill the GAG settings with a model family preset (front end only; the node keeps the values).";
}

function watchWidgets(node) {
  for (const w of node.widgets ?? []) {
    if (w.name === PRESET_WIDGET) continue;
    const original = w.callback;
    w.callback = function (...args) {
      const result = original?.apply(this, args);
      refresh(node);
      return result;
    };
  }
}

const isSettingsNode = (node) => (node?.comfyClass ?? node?.constructor?.comfyClass) === NODE_ID;

app.registerExtension({
  name: "ComfyUI-GAG.GAGSettings",

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE_ID) return;
    presets = await presetsReady;

    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function (...args) {
      const result = onNodeCreated?.apply(this, args);
      addPresetWidget(this);
      watchWidgets(this);
      refresh(this);
      return result;
    };

    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function (...args) {
      const result = onConfigure?.apply(this, args);
      refresh(this); // values loaded from a workflow
      return result;
    };
  },

  getNodeMenuItems(node) {
    if (!isSettingsNode(node) || !presets.length) return [];
    return [
      null,
      {
        content: "GAG presets",
        has_submenu: true,
        submenu: {
          options: presets.map((preset) => ({
            content: `${preset.name}${preset.basis === "paper" ? " (paper defaults)" : ""}`,
            callback: () => applyPreset(node, preset.name),
          })),
        },
      },
    ];
  },
});
