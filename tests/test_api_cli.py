"""`scaleset controller` serves the API: the address it says, and a clear error for a taken port."""
from __future__ import annotations

import socket

from controller.cli.main import main


def test_controller_says_where_the_api_is_and_refuses_a_taken_port(lab, monkeypatch, capsys):
    monkeypatch.setenv("SCALESET_LIBVIRT_URI", "test:///default")
    assert main(["controller", "--once", "--no-files", "--api-port", "0"]) == 0
    err = capsys.readouterr().err
    assert "ARM API on https://127.0.0.1:" in err

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["controller", "--once", "--no-files", "--api-port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"ERROR: (Conflict) --api-port: cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
    assert main(["controller", "--once", "--api-port", "70000"]) == 1
    assert "--api-port: 70000 is out of range" in capsys.readouterr().err
