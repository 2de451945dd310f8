// Plain-language widget labels on front ends that do not read an input's display_name yet
// (ComfyUI front end 1.32 and older; later ones show it themselves).
// Each GAG widget keeps its saved name ("lam"), so workflows and the API are unchanged; only the
// text on the canvas becomes the label the node definition gives ("strength (λ)"). A label the
// user set by renaming the widget is kept.
import { app } from "../../../scripts/app.js";

const NODE_IDS = new Set(["GAGSettings", "ApplyGAG", "GAGDiagnosticsPlot"]);

/** Input name -> display_name, from a node definition as /object_info serves it. */
function displayNames(nodeData) {
  const sections = [nodeData.input?.required, nodeData.input?.optional];
  const labels = {};
  for (const section of sections) {
    for (const [name, spec] of Object.entries(section ?? {})) {
      const label = Array.isArray(spec) ? spec[1]?.display_name : undefined;
      if (label) labels[name] = label;
    }
  }
  return labels;
}

app.registerExtension({
  name: "comfyui-gag.widget-labels",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODE_IDS.has(nodeData.name)) return;
    const labels = displayNames(nodeData);
    if (!Object.keys(labels).length) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      for (const widget of this.widgets ?? []) {
        const label = labels[widget.name];
        if (label && (!widget.label || widget.label === widget.name)) widget.label = label;
      }
      return result;
    };
  },
});
