import os
from pathlib import Path

import pytest

from controller.core.settings import LabPaths
from tests.apiserver import serve
from tests.azcli import az_venv  # noqa: F401 (session fixture)
from tests.fakedriver import FakeDriver
from tests.fakepool import streams
from tests.helpers import make_qcow2
from tests.hostnodes import silent_host  # noqa: F401 (fixture)
from tests.vmfixtures import build_log, gallery, v1, v2, vm_lab  # noqa: F401 (session fixtures)


@pytest.fixture(autouse=True)
def _test_driver_streams(request):
    """Uploads and resizes on test:// pools (tests/fakepool.py), except where the test driver's
    own refusal is what a test checks (`bare_test_driver`)."""
    if request.node.get_closest_marker("bare_test_driver"):
        yield
        return
    with streams():
        yield


@pytest.fixture
def lab(tmp_path, monkeypatch) -> LabPaths:
    """A fresh, empty lab home for one test."""
    home = tmp_path / "lab"
    monkeypatch.setenv("SCALESET_HOME", str(home))
    monkeypatch.setenv("SCALESET_PORTS_DIR", str(tmp_path))
    monkeypatch.delenv("SCALESET_CACHE", raising=False)
    return LabPaths(home).ensure()


@pytest.fixture
def qcow2_file(tmp_path) -> Path:
    return make_qcow2(tmp_path / "src" / "disk.qcow2", data=os.urandom(256 * 1024))


@pytest.fixture
def flab(lab, qcow2_file):
    """A lab on libvirt's test driver with image version 1.0.0, for the fake-driver tests."""
    from controller.ops.lab import Lab
    from controller.virt.accel import Accel
    t = Lab(lab, "test:///default", Accel("tcg", "test"))
    t.gallery.import_file("scaleset-lab", "debian", "debian-12", "1.0.0", qcow2_file)
    yield t
    t.close()


@pytest.fixture
def driver():
    return FakeDriver()


@pytest.fixture
def api(flab, driver):
    """The controller (on `driver`) and the ARM API on 127.0.0.1, for Azure's SDK."""
    yield from serve(flab, driver)
