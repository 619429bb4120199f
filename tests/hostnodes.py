"""Hosts for fast tests: `test:///ABSOLUTE/PATH.xml` nodes of libvirt's test driver (a private
in-memory state per connection: the lab's one connection per URI is the host), a host that never
answers (`silent_host`: a 127.0.0.1 socket that accepts and stays silent), and a lab whose region
`east` has two such nodes. The boot wait is stubbed: there is no guest in the test driver."""
import socket
import threading
import uuid

import pytest

from controller.model.region import Host, Region
from controller.ops import commands as ops
from controller.ops import provision
from controller.ops.lab import Lab
from controller.virt import vm
from controller.virt.accel import Accel
from controller.virt.readiness import Readiness
from tests.helpers import mark_replicated

P, O, S = "scaleset-lab", "debian", "debian-12"
NODE = "<node><pool type='dir'><name>{pool}</name><target><path>{path}</path></target></pool></node>"
BOUND = 1.0  # seconds the lab gives a host in these tests


def node(tmp_path, name: str) -> str:
    f = tmp_path / f"{name}.xml"
    f.write_text(NODE.format(pool=f"pool-{name}", path=tmp_path / f"pool-{name}"))
    return f"test://{f}"


def booted(lab_, inst, started, timeout=0):
    """The guest side: cloud-init done at once."""
    return vm.Booted(Readiness("done", str(uuid.uuid4()), {"version": inst.image["version"]}, {}), [])


def two_host_lab(paths, qcow2_file, tmp_path, monkeypatch, doc: dict) -> Lab:
    """A lab whose region `east` has hosts h1 and h2 (`lab.test_uris`), image 1.0.0 there, and
    the set `doc` (located in `east`) created on them."""
    t = Lab(paths, "test:///default", Accel("tcg", "test"), host_timeout=BOUND)
    uris = [node(tmp_path, "h1"), node(tmp_path, "h2")]
    t.regions.add(Region("east", (Host(uris[0], "pool-h1"), Host(uris[1], "pool-h2"))))
    mark_replicated(t, t.gallery.import_file(P, O, S, "1.0.0", qcow2_file, ["east", "local"]))
    monkeypatch.setattr(provision, "wait_booted", booted)
    monkeypatch.setattr(ops, "wait_booted", booted)
    ops.create(t, doc)
    t.test_uris = uris
    return t


class Silent:
    """A 127.0.0.1 port that accepts connections and never answers (a host that hangs);
    hang_up() closes the connections it holds (whoever waits on one gets an end of file)."""

    def __init__(self) -> None:
        self._srv = socket.socket()
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(16)
        self.uri = f"qemu+tcp://127.0.0.1:{self._srv.getsockname()[1]}/system"
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._srv.settimeout(0.2)
        while not self._stop.is_set():
            try:
                self._held.append(self._srv.accept()[0])
            except OSError:
                pass

    def hang_up(self) -> None:
        held, self._held = self._held, []
        for s in held:
            s.close()

    def close(self) -> None:
        self._stop.set()
        self.hang_up()
        self._srv.close()


@pytest.fixture
def silent_host():
    """The URI of a host that never answers (Silent)."""
    host = Silent()
    yield host.uri
    host.close()
