"""The architecture as a rule: each layer imports only the layers below it; constants that the
host and the guest both use agree."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Lower first: a module may import its own layer and the layers before it in this list.
LAYERS = ["agent", "controller.core", "controller.template", "controller.model", "images", "controller.virt",
          "controller.state", "controller.ops", "controller.api", "controller.web",
          "controller.rehearse", "controller.cli"]
PEERS = {("controller.virt", "controller.state"), ("controller.state", "controller.virt")}  # neither uses the other


def layer_of(module: str) -> str | None:
    for name in sorted(LAYERS, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of the file, relative ones resolved."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names if layer_of(f"{mod}.{a.name}")
                    and not layer_of(mod)]
    return out


def violations() -> list[str]:
    bad = []
    for top in ("agent", "controller", "images"):
        for path in sorted((REPO / top).rglob("*.py")):
            if path == REPO / "controller" / "__init__.py":
                continue
            mine = layer_of(".".join(path.relative_to(REPO).with_suffix("").parts))
            if mine is None:
                bad.append(f"{path.relative_to(REPO)}: in no layer (controller/*.py must live in a layer package)")
                continue
            for line, mod in imports(path):
                theirs = layer_of(mod)
                if theirs is None or theirs == mine or (mine, theirs) in PEERS:
                    if (mine, theirs) in PEERS:
                        bad.append(f"{path.relative_to(REPO)}:{line}: {mine} imports its peer {mod}")
                    continue
                if LAYERS.index(theirs) > LAYERS.index(mine):
                    bad.append(f"{path.relative_to(REPO)}:{line}: {mine} imports {mod} (a layer above it)")
    return bad


def test_each_layer_imports_only_the_layers_below_it():
    assert violations() == []


def test_the_rule_catches_an_upward_import():
    """The checker itself: a model module importing ops is reported."""
    fake = REPO / "controller" / "model" / "_layer_probe.py"
    fake.write_text("from controller.ops.lab import Lab\n")
    try:
        assert any("_layer_probe.py:1: controller.model imports controller.ops.lab" in v for v in violations())
    finally:
        fake.unlink()


def test_controller_has_no_loose_modules():
    assert sorted(p.name for p in (REPO / "controller").glob("*.py")) == ["__init__.py"]


def _listen_port() -> int:
    """The agent server's default --listen port, as its source says."""
    src = (REPO / "agent" / "server.py").read_text()
    default = src.split('"--listen", default="', 1)[1].split('"', 1)[0]
    return int(default.rsplit(":", 1)[1])


def test_host_and_guest_constants_agree():
    from agent import runner, server
    from controller.model import extensions
    from controller.model.instance import AGENT_PORT
    from controller.virt import readiness
    from images import builder

    assert runner.AGENT_PORT == AGENT_PORT == _listen_port()
    assert f"--listen 0.0.0.0:{AGENT_PORT}" in runner.UNIT_TEXT
    assert str(runner.BASE) == extensions.GUEST_DIR
    assert str(runner.CONFIG) == extensions.GUEST_CONFIG
    assert str(runner.STATUS_DIR) == extensions.GUEST_STATUS == str(server.EXTENSION_STATUS)
    assert str(runner.AGENT_HOME) == extensions.GUEST_AGENT_HOME
    assert readiness.STAMP == "/" + builder.STAMP_PATH == str(server.STAMP)
    assert runner.HEALTH == "ApplicationHealthLinux" and runner.CUSTOM_SCRIPT == "CustomScript"


@pytest.mark.parametrize("module", ["agent.health", "agent.probe", "agent.settings", "agent.server", "agent.runner"])
def test_guest_code_uses_the_standard_library_only(module):
    """agent/ runs in the guest, which has Python's standard library and python3-aiohttp (the recipe)."""
    path = REPO / (module.replace(".", "/") + ".py")
    for _, mod in imports(path):
        top = mod.split(".")[0]
        assert top in ("agent", "__future__", "aiohttp") or top in sys.stdlib_module_names, mod
