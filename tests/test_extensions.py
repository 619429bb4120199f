"""Extensions: dependency order on the host, the in-guest runner run on the host, statuses."""
import base64
import copy
import gzip
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pycdlib
import pytest

from agent import runner
from controller.model import extensions as ext_mod
from controller.model.instance import Instance
from controller.model.scaleset import Extension, ExtensionProperties
from controller.virt import vm
from lab.samples import health_extension, sample_app_extension
from tests.test_model import BASE

CS = ("Microsoft.Azure.Extensions", "CustomScript")


def ext(name, after=(), **settings):
    return Extension(name, ExtensionProperties(*CS, settings=settings, provisionAfterExtensions=list(after)))


def test_dependency_order_of_a_dag_of_four():
    exts = [ext("d", ["b", "c"]), ext("c", ["a"]), ext("b", ["a"]), ext("a")]
    order = [e.name for e in ext_mod.ordered(exts)]
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("c") < order.index("d") and len(order) == 4


@pytest.fixture
def guest(tmp_path, monkeypatch):
    """The runner's folders redirected into tmp_path."""
    base = tmp_path / "ext"
    monkeypatch.setattr(runner, "BASE", base)
    monkeypatch.setattr(runner, "CONFIG", base / "config.json")
    monkeypatch.setattr(runner, "STATUS_DIR", base / "status")
    base.mkdir()

    def run(exts, timeout=30):
        cfg = ext_mod.runner_config(exts, timeout_seconds=timeout)
        (base / "config.json").write_text(json.dumps(cfg))
        rc = runner.main()
        statuses = ext_mod.parse_statuses("\n".join(p.read_text() for p in (base / "status").glob("*.json")))
        return rc, {s["name"]: s for s in statuses}
    return run


def test_runner_runs_in_order_and_failure_stops_dependants(guest, tmp_path):
    log = tmp_path / "order"
    rc, st = guest([ext("a", commandToExecute=f"echo a >> {log}"),
                    ext("b", ["a"], commandToExecute=f"echo b >> {log}; echo oops >&2; exit 4"),
                    ext("c", ["b"], commandToExecute=f"echo c >> {log}"),
                    ext("d", ["a"], commandToExecute=f"echo d >> {log}")])
    assert rc == 1
    assert log.read_text().split() == ["a", "b", "d"]
    assert st["a"]["provisioningState"] == "Succeeded" and st["a"]["exitCode"] == 0
    assert st["b"]["provisioningState"] == "Failed" and st["b"]["exitCode"] == 4 and st["b"]["stderr"] == "oops\n"
    assert st["c"]["provisioningState"] == "Failed" and "prerequisite b did not succeed" in st["c"]["message"]
    assert st["d"]["provisioningState"] == "Succeeded"
    assert st["a"]["startTime"] <= st["a"]["endTime"] <= st["b"]["startTime"]


def test_script_setting_may_be_gzipped_and_protected_settings_stay_out_of_statuses(guest, tmp_path):
    script = base64.b64encode(gzip.compress(b"#!/bin/sh\necho from-script $0\n")).decode()
    e = ext("s", script=script)
    e.properties.protectedSettings = {"commandToExecute": "echo not-used", "token": "s3cret-token"}
    rc, st = guest([e])
    assert rc == 0 and st["s"]["stdout"].startswith("from-script")
    assert "s3cret-token" not in json.dumps(st)
    assert "s3cret-token" not in runner.CONFIG.read_text()  # dropped from the guest's copy after the run


@pytest.fixture
def file_server(tmp_path):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if "token=expired" in self.path:
                self.send_response(403)
                self.end_headers()
                return
            body = b"#!/bin/sh\necho payload ran\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_file_uris_are_downloaded_and_an_expired_token_fails_without_leaking_it(guest, file_server):
    ok = ext("ok", fileUris=[f"{file_server}/payload.sh?token=good"], commandToExecute="sh payload.sh")
    rc, st = guest([ok])
    assert rc == 0 and st["ok"]["stdout"] == "payload ran\n"
    bad = ext("bad", fileUris=[f"{file_server}/payload.sh?token=expired"], commandToExecute="sh payload.sh")
    rc, st = guest([bad])
    assert rc == 1 and st["bad"]["provisioningState"] == "Failed"
    assert "HTTP 403" in st["bad"]["message"] and "expired" not in st["bad"]["message"]


def test_status_renders_as_the_instance_view_shows_it():
    entry = ext_mod.instance_view_entry({"name": "a", "publisher": CS[0], "type": CS[1], "typeHandlerVersion": "2.1",
                                         "provisioningState": "Failed", "message": "exit code 2", "exitCode": 2,
                                         "stdout": "out", "stderr": "err", "endTime": "T"})
    assert entry["type"] == "Microsoft.Azure.Extensions.CustomScript"
    s = entry["statuses"][0]
    assert s["code"] == "ProvisioningState/failed" and s["level"] == "Error" and s["time"] == "T"
    assert s["message"] == "exit code 2\n[stdout]\nout\n[stderr]\nerr"


def test_garbage_status_lines_are_skipped():
    assert ext_mod.parse_statuses('{"name": "a"}\nnot json\n[1]\n\n') == [{"name": "a"}]


def test_health_extension_with_bad_settings_fails_with_the_reason(guest, monkeypatch):
    e = Extension("health", ExtensionProperties("Microsoft.ManagedServices", "ApplicationHealthLinux",
                                                settings={"protocol": "tcp", "requestPath": "/x"}))
    rc, st = guest([e])
    assert rc == 1 and st["health"]["provisioningState"] == "Failed"
    assert st["health"]["message"] == "invalid settings: settings.port: is required for tcp"


def test_the_seed_ships_the_agent_only_with_the_health_extension(lab):
    def files_in_seed(exts):
        d = copy.deepcopy(BASE)["properties"]["virtualMachineProfile"]
        d["extensionProfile"] = {"extensions": exts}
        inst = Instance("web", 0, "dom0", "web000000", 0, 0, {"vm": d, "network": "user"}, "", "", "", "", {22: 1})
        seed = vm.instance_seed(lab, inst, "ci-0123456789ab")
        iso = pycdlib.PyCdlib()
        iso.open_fp(io.BytesIO(seed))
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, rr_path="/user-data")
        iso.close()
        return buf.getvalue().decode()

    plain = files_in_seed([sample_app_extension()])
    assert "/var/lib/scaleset-lab/extensions/runner.py" in plain and "/opt/scaleset-lab/agent" not in plain
    with_agent = files_in_seed([sample_app_extension(), health_extension(after=["sample-app"])])
    assert "/opt/scaleset-lab/agent/server.py" in with_agent
