"""Comfy Registry / ComfyUI-Manager packaging: pyproject.toml read by the host's own parser
(comfy_config, what ComfyUI uses when it loads a pack) plus the Registry's documented rules."""

import re
import tomllib

from devtools.comfy_host import REPO_ROOT

SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


def test_pyproject_passes_the_hosts_parser_and_registry_rules(comfy):
    from comfy_config import config_parser

    config = config_parser.extract_node_configuration(str(REPO_ROOT))
    project, comfy_tool = config.project, config.tool_comfy
    assert project.name and project.name == project.name.lower()
    assert "comfyui" not in project.name.lower()  # the Registry refuses names containing "ComfyUI"
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", project.name)
    assert SEMVER.match(project.version)
    assert project.description
    assert project.license.file == "LICENSE" and (REPO_ROOT / "LICENSE").is_file()
    assert project.urls.repository.startswith("https://github.com/")
    assert comfy_tool.publisher_id and re.fullmatch(r"[a-z0-9-]+", comfy_tool.publisher_id)
    assert comfy_tool.display_name
    assert comfy_tool.icon.endswith("/web/icon.png") and (REPO_ROOT / "web" / "icon.png").is_file()
    assert project.supported_os == ["OS Independent"]


def test_runtime_requirements_leave_torch_to_comfyui():
    requirements = [line.split("#")[0].strip() for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()]
    assert not [r for r in requirements if r and re.match(r"(torch|torchvision|torchaudio)\b", r)]
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert dependencies == [r for r in requirements if r]
    # installs the ComfyUI-Manager way: no install hooks, nothing fetched at run time
    assert not (REPO_ROOT / "install.py").exists()
    for path in list((REPO_ROOT / "gag_core").glob("*.py")) + list((REPO_ROOT / "nodes").glob("*.py")):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(pip|urllib|requests|huggingface_hub|socket|http)\b", text,
                             re.MULTILINE), path
