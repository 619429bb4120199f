"""Session fixtures of the VM tier, shared by its modules: one lab, images built once."""
import os
from pathlib import Path

import pytest

from controller.core.settings import LabPaths
from controller.state.db import connect
from images.builder import build
from images.gallery import Gallery

REPO = Path(__file__).resolve().parent.parent
P, O, S = "scaleset-lab", "debian", "debian-12"


@pytest.fixture(scope="session")
def vm_lab(tmp_path_factory):
    """One lab for the VM tier; the package set is cached in .cache/ across runs (by recipe hash)."""
    home = tmp_path_factory.mktemp("vmlab")
    os.environ["SCALESET_HOME"] = str(home)
    os.environ.setdefault("SCALESET_CACHE", str(REPO / ".cache" / "images"))
    os.environ["SCALESET_PORTS_DIR"] = str(home)
    return LabPaths(home).ensure()


@pytest.fixture(scope="session")
def gallery(vm_lab):
    return Gallery(vm_lab, connect(vm_lab.db))


@pytest.fixture(scope="session")
def build_log():
    return []


@pytest.fixture(scope="session")
def v1(gallery, build_log):
    return build(gallery, P, O, S, "1.0.0", log=build_log.append)


@pytest.fixture(scope="session")
def v2(gallery, v1, tmp_path_factory):
    """A second version of the same recipe, with a customize script: (image version, build log)."""
    script = tmp_path_factory.mktemp("v2") / "v2.sh"
    script.write_text("echo 'version two' > /etc/scaleset-demo\napt-get --version >/dev/null\n")
    log: list[str] = []
    return build(gallery, P, O, S, "1.1.0", customize=[script], log=log.append), log
