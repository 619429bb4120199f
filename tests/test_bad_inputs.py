"""Bad input through the real CLI: a non-zero exit, one message naming the field, flag or file,
no traceback (nor an InternalError hiding one), and state.db exactly as it was."""
from __future__ import annotations

import functools
import json
import os
import sqlite3

import pytest

from controller.cli import main as cli_main
from controller.cli.main import main
from tests.bad_model_corpus import (
    KEY,
    MODEL_CASES,
    TOKEN,
    VALID,
    VMP,
    O,
    P,
    S,
    health_model,
    mutate,
    nested,
)
from tests.helpers import make_qcow2
from tests.test_model import BASE


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A lab with image 1.0.0 and a scale set `web` of capacity 0, made once through the CLI."""
    tmp = tmp_path_factory.mktemp("template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCALESET_HOME", str(tmp / "lab"))
        mp.setenv("SCALESET_PORTS_DIR", str(tmp))
        mp.setenv("SCALESET_LIBVIRT_URI", "test:///default")
        mp.delenv("SCALESET_CACHE", raising=False)
        disk = make_qcow2(tmp / "disk.qcow2", data=os.urandom(64 * 1024))
        assert main(["image", "import", "--publisher", P, "--offer", O, "--sku", S, "--version", "1.0.0",
                     "--file", str(disk)]) == 0
        web = mutate(BASE, "sku.capacity", 0)
        (tmp / "web.json").write_text(json.dumps(web))
        assert main(["create", "--model", str(tmp / "web.json"), "-o", "table"]) == 0
    return tmp / "lab" / "state.db"


@pytest.fixture
def home(lab, template, monkeypatch, tmp_path):
    """A copy of the template lab's state; files for the cases under tmp_path/in."""
    monkeypatch.setenv("SCALESET_LIBVIRT_URI", "test:///default")
    monkeypatch.setattr(cli_main, "parser", _parser)  # built once: argparse takes ~20 ms a build
    src, dst = sqlite3.connect(template), sqlite3.connect(lab.db)
    src.backup(dst)
    src.close()
    dst.close()
    (tmp_path / "in").mkdir()
    return lab


_parser = functools.cache(cli_main.parser)


def dump(db) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def run(capsys, argv: list[str]) -> tuple[int, str]:
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's usage errors: exit 2 with a message
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out + out.err


def check(home, capsys, argv: list[str], field: str) -> str:
    before = dump(home.db)
    rc, text = run(capsys, argv)
    assert rc not in (0, None), text
    assert "Traceback" not in text and "InternalError" not in text, text
    assert field in text, f"{field!r} not named in: {text[:2000]}"
    assert TOKEN not in text
    assert dump(home.db) == before
    return text


@pytest.mark.parametrize("doc, field", MODEL_CASES)
def test_create_with_a_bad_model(home, capsys, tmp_path, doc, field):
    f = tmp_path / "in" / "model.json"
    f.write_text(json.dumps(doc))
    check(home, capsys, ["create", "--model", str(f)], field)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Files the cases name, written once: {name} in an argv is replaced by the path."""
    d = tmp_path_factory.mktemp("in")
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (d / "deep200.json").write_text(json.dumps({"name": nested(200)}))
    (d / "big.json").write_text(json.dumps({**VALID, "id": "x" * (2 << 20)}))
    (d / "dup.json").write_text('{"name": "a", "name": "b"}')
    (d / "nan.json").write_text(json.dumps(VALID).replace('"capacity": 0', '"capacity": NaN'))
    (d / "huge-int.json").write_text(json.dumps(VALID).replace('"capacity": 0', '"capacity": ' + "9" * 5000))
    (d / "bad.json").write_text("{not json")
    (d / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    (d / "list.json").write_text("[1, 2]")
    (d / "empty.json").write_text("")
    (d / "bom.json").write_text("\ufeff" + json.dumps(VALID))
    (d / "big.bin").write_bytes(b"x" * 70_000)
    (d / "key.txt").write_text("not a key\n")
    (d / "deep-settings.json").write_text("{\"a\": " * 100 + "1" + "}" * 100)
    (d / "script.sh").write_text("echo hi\n")
    return {p.name: str(p) for p in d.iterdir()} | {"dir": str(d), "missing": str(d / "nope.json")}


IMG = ["--publisher", P, "--offer", O, "--sku", S]
NEW = ["create", "--instance-count", "0"]  # were a bad input accepted, no VM boots (a later flag wins)
EXT_SET = ["extension", "set", "--vmss-name", "web"]
CS = EXT_SET + ["--name", "CustomScript", "--publisher", "Microsoft.Azure.Extensions"]
AHL = EXT_SET + ["--name", "ApplicationHealthLinux", "--publisher", "Microsoft.ManagedServices", "--version", "1.0"]
SETP = "--set"
PROBE = "properties.virtualMachineProfile.networkProfile.healthProbe"
# argv (with {file} placeholders from _files), the field the message must name
CLI = [
    (["create", "--model", "{deep.json}"], "--model"), (["create", "--model", "{deep200.json}"], "--model"),
    (["create", "--model", "{big.json}"], "--model"), (["create", "--model", "{dup.json}"], "--model"),
    (["create", "--model", "{nan.json}"], "--model"), (["create", "--model", "{huge-int.json}"], "--model"),
    (["create", "--model", "{bad.json}"], "--model"), (["create", "--model", "{bin.json}"], "--model"),
    (["create", "--model", "{list.json}"], "--model"), (["create", "--model", "{empty.json}"], "--model"),
    (["create", "--model", "{bom.json}"], "--model"), (["create", "--model", "{missing}"], "--model"),
    (["create", "--model", "{dir}"], "--model"), (["create", "--model", "/dev/zero"], "--model"),
    (["create", "--model", "{deep-settings.json}"], "--model"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--instance-count", "-3"], "--instance-count"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--instance-count", "1001"], "--instance-count"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--instance-count", "abc"], "--instance-count"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--instance-count", "1.5"], "--instance-count"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--enable-auto-os-upgrade", "yes2"],
     "--enable-auto-os-upgrade"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--enable-auto-os-upgrade", "yes"],
     "--enable-auto-os-upgrade"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--enable-auto-os-upgrade", ""],
     "--enable-auto-os-upgrade"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--data-disk-sizes-gb", "0"], "--data-disk-sizes-gb"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--data-disk-sizes-gb", "2000"],
     "--data-disk-sizes-gb"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--data-disk-sizes-gb", "x"], "--data-disk-sizes-gb"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--data-disk-sizes-gb", *["1"] * 65],
     "--data-disk-sizes-gb"),
    ([*NEW, "-n", "web\n", "--image", f"{P}:{O}:{S}:latest"], "--name"),
    ([*NEW, "-n", "-bad", "--image", f"{P}:{O}:{S}:latest"], "--name"),
    ([*NEW, "-n", "", "--image", f"{P}:{O}:{S}:latest"], "--name"),
    ([*NEW, "-n", "web", "--image", f"{P}:{O}:{S}:latest"], "$.name"),  # exists: Conflict
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}"], "--image"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:1.0"], "--image"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:1.0.0\n"], "--image"),
    ([*NEW, "-n", "x", "--image", f"{P}\n:{O}:{S}:1.0.0"], "--image"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:9.9.9"], "imageReference"),
    ([*NEW, "-n", "x"], "--image"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "-l", "east us"], "--location"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "-l", "local\n"], "--location"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--admin-username", "root"], "--admin-username"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--admin-username", "Bad"], "--admin-username"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--computer-name-prefix", "1abc"],
     "--computer-name-prefix"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--computer-name-prefix", "toolongprefix"],
     "--computer-name-prefix"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--custom-data", "{missing}"], "--custom-data"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--custom-data", "{dir}"], "--custom-data"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--custom-data", "{big.bin}"], "--custom-data"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--ssh-key-values", "ssh-rsa notbase64"],
     "--ssh-key-values"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--ssh-key-values", "{missing}"], "--ssh-key-values"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--ssh-key-values", "{key.txt}"], "--ssh-key-values"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--ssh-key-values", "AAAA/" + "x" * 400],
     "--ssh-key-values"),
    ([*NEW, "-n", "x", "--image", f"{P}:{O}:{S}:latest", "--upgrade-policy-mode", "Sometimes"],
     "--upgrade-policy-mode"),
    (["update", "-n", "web", SETP, "name.x=1"], "--set"), (["update", "-n", "web", SETP, "sku.capacity.x=1"], "--set"),
    (["update", "-n", "web", SETP, "a.b[0]=5"], "--set"), (["update", "-n", "web", SETP, "x[abc]=1"], "--set"),
    (["update", "-n", "web", SETP, "a..b=1"], "--set"), (["update", "-n", "web", SETP, "=1"], "--set"),
    (["update", "-n", "web", SETP, ".=1"], "--set"), (["update", "-n", "web", SETP, "properties.x[99]=1"], "--set"),
    (["update", "-n", "web", SETP, "x[-1]=1"], "--set"), (["update", "-n", "web", SETP, "tags[0]=x"], "--set"),
    (["update", "-n", "web", SETP, "noequals"], "--set"), (["update", "-n", "web", SETP, "a b=1"], "--set"),
    (["update", "-n", "web", SETP, "nаme=web"], "--set"), (["update", "-n", "web", SETP, "a" * 2000 + "=1"], "--set"),
    (["update", "-n", "web", SETP, "sku[0]=1"], "--set"), (["update", "-n", "web", SETP, "name[0]=1"], "--set"),
    (["update", "-n", "web", SETP, "properties.virtualMachineProfile.storageProfile.dataDisks[5].lun=1"], "--set"),
    (["update", "-n", "web", SETP, "properties.virtualMachineProfile.storageProfile.dataDisks[0][0]=1"], "--set"),
    (["update", "-n", "web", SETP, "properties.virtualMachineProfile.extensionProfile.extensions[0]=5"], "--set"),
    (["update", "-n", "web", SETP, "sku.capacity=" + "[" * 100_000 + "]" * 100_000], "--set"),
    (["update", "-n", "web", SETP, "sku.capacity=" + json.dumps(nested(100))], "--set"),
    (["update", "-n", "web", SETP, "id=" + "x" * (2 << 20)], "--set"),
    (["update", "-n", "web", SETP, "sku.capacity=-1"], "$.sku.capacity"),
    (["update", "-n", "web", SETP, "sku.capacity=abc"], "$.sku.capacity"),
    (["update", "-n", "web", SETP, "sku.capacity=1.5"], "$.sku.capacity"),
    (["update", "-n", "web", SETP, 'sku.capacity={"a": 1}'], "$.sku.capacity"),
    (["update", "-n", "web", SETP, "name=other"], "$.name"), (["update", "-n", "web", SETP, "name=web\n"], "$.name"),
    (["update", "-n", "web", SETP, 'location=""'], "$.location"),
    (["update", "-n", "web", SETP, "properties.upgradePolicy.mode=Sometimes"], "$.properties.upgradePolicy.mode"),
    (["update", "-n", "web", SETP, "properties.upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent=500"],
     "maxBatchInstancePercent"),
    (["update", "-n", "web", SETP, f"{PROBE}.requestPath=@127.0.0.1:1/x"], "healthProbe.requestPath"),
    (["update", "-n", "web", SETP, f"{PROBE}.numberOfProbes=-1"], "healthProbe.numberOfProbes"),
    (["update", "-n", "web", SETP, "properties.virtualMachineProfile.storageProfile.osDisk.diskSizeGB=0"],
     "osDisk.diskSizeGB"),
    (["update", "-n", "web", SETP, "properties.virtualMachineProfile.osProfile.customData=notbase64!"],
     f"{VMP}.osProfile.customData"),
    (["update", "-n", "web", SETP, "properties.labSettings.vcpus=0"], "labSettings.vcpus"),
    (["update", "-n", "web", SETP, "properties.bogus=1"], "$.properties.bogus"),
    (["update", "-n", "web", SETP, "properties.virtualMachineProfile.storageProfile.imageReference.version=9.9.9"],
     "imageReference"),
    (["update", "-n", "web", SETP, "sku.capacity=1", SETP, "sku.name=a b"], "$.sku.name"),
    (["update", "-n", "nope", SETP, "sku.capacity=1"], "nope"), (["update", "-n", "web"], "--set"),
    (CS + ["--settings", "not json"], "--settings"), (CS + ["--settings", "[1, 2]"], "--settings"),
    (CS + ["--settings", "[" * 100_000], "--settings"), (CS + ["--settings", "@{missing}"], "--settings"),
    (CS + ["--settings", "@{dir}"], "--settings"), (CS + ["--settings", "@{big.json}"], "--settings"),
    (CS + ["--settings", '{"a": 1, "a": 2}'], "--settings"), (CS + ["--settings", "@{deep-settings.json}"], "--settings"),
    (CS + ["--protected-settings", '{"token": "' + TOKEN], "--protected-settings"),
    (CS + ["--protected-settings", json.dumps([TOKEN])], "--protected-settings"),
    (CS + ["--settings", "{}"], "extensions[0].properties.settings"),
    (CS + ["--settings", '{"commandToExecute": 5}'], "extensions[0].properties.settings.commandToExecute"),
    (CS + ["--settings", '{"comandToExecute": "x"}'], "extensions[0].properties.settings.comandToExecute"),
    (CS + ["--settings", '{"commandToExecute": "x", "fileUris": ["file:///etc/passwd"]}'],
     "extensions[0].properties.settings.fileUris[0]"),
    (CS + ["--settings", '{"commandToExecute": "x"}', "--protected-settings", '{"commandToExecute": "y"}'],
     "extensions[0].properties.protectedSettings.commandToExecute"),
    (EXT_SET + ["--name", "DockerExtension", "--publisher", "Microsoft.Azure.Extensions", "--settings", "{}"],
     "extensions[0].properties.type"),
    (EXT_SET + ["--name", "CustomScript", "--publisher", "Evil\n", "--settings", "{}"], "extensions[0].properties"),
    (CS + ["--version", "2.1\n", "--settings", '{"commandToExecute": "x"}'], "typeHandlerVersion"),
    (CS + ["--version", "x", "--settings", '{"commandToExecute": "x"}'], "typeHandlerVersion"),
    (CS + ["--extension-instance-name", "bad name", "--settings", '{"commandToExecute": "x"}'],
     "extensions[0].name"),
    (CS + ["--provision-after-extensions", "nope", "--settings", '{"commandToExecute": "x"}'],
     "provisionAfterExtensions[0]"),
    (CS + ["--extension-instance-name", "a", "--provision-after-extensions", "a", "--settings",
           '{"commandToExecute": "x"}'], "provisionAfterExtensions"),
    (AHL + ["--settings", '{"protocol": "ftp"}'], "extensions[0].properties.settings.protocol"),
    (AHL + ["--settings", '{"protocol": "http", "requestPath": "@127.0.0.1:1/x"}'],
     "extensions[0].properties.settings.requestPath"),
    (AHL + ["--settings", '{"protocol": "http", "port": 0}'], "extensions[0].properties.settings.port"),
    (AHL + ["--settings", '{"protocol": "http", "bogus": 1}'], "extensions[0].properties.settings.bogus"),
    (AHL + ["--settings", '{"protocol": "http", "numberOfProbes": -2}'],
     "extensions[0].properties.settings.numberOfProbes"),
    (AHL + ["--settings", '{"protocol": "http"}'], f"{VMP}.networkProfile.healthProbe"),
    (EXT_SET + ["--name", "CloudConfig", "--publisher", "ScaleSetLab", "--settings", '{"cloudConfig": 5}'],
     "settings.cloudConfig"),
    (EXT_SET[:2] + ["--vmss-name", "nope", "--name", "CustomScript", "--publisher", "Microsoft.Azure.Extensions",
                    "--settings", '{"commandToExecute": "x"}'], "nope"),
    (["image", "import", "--publisher", "p\n", "--offer", O, "--sku", S, "--version", "2.0.0", "--file",
      "{big.bin}"], "publisher"),
    (["image", "import", "--publisher", P, "--offer", "", "--sku", S, "--version", "2.0.0", "--file", "{big.bin}"],
     "offer"),
    (["image", "import", "--publisher", P, "--offer", O, "--sku", "../x", "--version", "2.0.0", "--file",
      "{big.bin}"], "sku"),
    *[(["image", "import", *IMG, "--version", v, "--file", "{big.bin}"], "version")
      for v in ("1.0", "1.0.0\n", "01.0.0", "1.0.0.0", "2147483648.0.0", "latest", "-1.0.0", "1.0.0 ")],
    (["image", "import", *IMG, "--version", "1.0.0", "--file", "{big.bin}"], "version"),  # exists: Conflict
    (["image", "import", *IMG, "--version", "2.0.0", "--file", "{missing}"], "nope.json"),
    (["image", "import", *IMG, "--version", "2.0.0", "--file", "{big.bin}"], "file"),
    (["image", "import", *IMG, "--version", "2.0.0", "--file", "{big.bin}", "--target-regions", "east us"],
     "--target-regions"),
    (["image", "import", *IMG, "--version", "2.0.0", "--file", "{big.bin}", "--target-regions", "local\n"],
     "--target-regions"),
    (["image", "build", "--publisher", "p\n", "--offer", O, "--sku", S, "--version", "2.0.0"], "publisher"),
    (["image", "build", *IMG, "--version", "x"], "version"),
    (["image", "build", *IMG, "--version", "2.0.0", "--recipe", "../etc/passwd"], "--recipe"),
    (["image", "build", *IMG, "--version", "2.0.0", "--recipe", "debian-12\n"], "--recipe"),
    (["image", "build", *IMG, "--version", "2.0.0", "--recipe", "nope"], "--recipe"),
    (["image", "build", *IMG, "--version", "2.0.0", "--customize", "{missing}"], "customize[0]"),
    (["image", "build", *IMG, "--version", "2.0.0", "--target-regions", "bad region"], "--target-regions"),
    (["image", "show", *IMG, "--version", "1.0"], "version"),
    (["image", "show", *IMG, "--version", "latest\n"], "version"),
    (["image", "show", "--publisher", "nope", "--offer", O, "--sku", S, "--version", "latest"], "imageReference"),
    (["image", "show", *IMG, "--version", "9.9.9"], "imageReference"),
    (["image", "update", *IMG, "--version", "1.0.0", "--exclude-from-latest", "yes2"], "--exclude-from-latest"),
    (["image", "update", *IMG, "--version", "1.0.0", "--exclude-from-latest", "maybe"], "--exclude-from-latest"),
    (["image", "update", *IMG, "--version", "1.0.0", "--target-regions", "a b"], "--target-regions"),
    (["image", "update", *IMG, "--version", "1.0\n", "--exclude-from-latest", "true"], "version"),
    (["image", "delete", *IMG, "--version", "9.9.9"], "imageReference"),
    (["image", "delete", *IMG, "--version", "x.y.z"], "version"),
    *[(["health", "-n", "web", "--interval", v], "--interval") for v in ("-1", "0", "nan", "inf", "1e9", "abc")],
    (["health", "-n", "nope"], "nope"), (["health", "-n", "web", "-o", "yaml"], "--output"),
    *[(["scale", "-n", "web", "--new-capacity", v], "--new-capacity")
      for v in ("-3", "1001", "abc", "1.5", "99999999999999999999")],
    (["scale", "-n", "nope", "--new-capacity", "1"], "nope"),
    *[(["update-instances", "-n", "web", "--update-domain", v], "--update-domain") for v in ("7", "-1", "x")],
    (["update-instances", "-n", "web"], "--instance-ids"),
    (["update-instances", "-n", "web", "--instance-ids", "99"], "--instance-ids"),
    (["update-instances", "-n", "web", "--instance-ids", "abc"], "--instance-ids"),
    (["reimage", "-n", "web", "--instance-ids", "5"], "--instance-ids"),
    (["start", "-n", "web", "--instance-ids", "x"], "--instance-ids"),
    (["get-instance-view", "-n", "web", "--instance-id", "99"], "--instance-id"),
    (["run-command", "invoke", "-n", "web", "--instance-id", "99", "--scripts", "true"], "--instance-id"),
    (["run-command", "invoke", "-n", "web", "--instance-id", "abc", "--scripts", "true"], "--instance-id"),
    (["run-command", "invoke", "-n", "web", "--instance-id", "0", "--command-id", "X", "--scripts", "true"],
     "--command-id"),
    (["run-command", "invoke", "-n", "web", "--instance-id", "0"], "--scripts"),
    (["run-command", "invoke", "-n", "web", "--instance-id", "0", "--scripts", "x" * 300_000], "--scripts"),
    (["run-command", "invoke", "-n", "nope", "--instance-id", "0", "--scripts", "true"], "nope"),
    (["rolling-upgrade", "start", "-n", "nope"], "nope"), (["rolling-upgrade", "start"], "--name"),
    (["rolling-upgrade", "cancel", "-n", "web"], "web"),
    (["rolling-upgrade", "get-latest", "-n", "web"], "--name"),
    *[(["rolling-upgrade", "get-latest", "-n", "web", "--interval", v], "--interval") for v in ("-1", "nan", "x")],
    (["get-os-upgrade-history", "-n", "nope"], "nope"),
    *[(["controller", "--once", "--interval", v], "--interval") for v in ("-1", "0", "inf")],
    (["show", "-n", "nope"], "nope"), (["delete", "-n", "nope"], "nope"), (["list-instances", "-n", "nope"], "nope"),
    (["files", "put", "--file", "{script.sh}", "--name", "../x"], "--name"),
    (["files", "put", "--file", "{script.sh}", "--name", ".hidden"], "--name"),
    (["files", "put", "--file", "{script.sh}", "--name", "a" * 300], "--name"),
    (["files", "put", "--file", "{missing}"], "--file"),
    (["files", "url", "--name", "../state.db"], "--name"),
    (["files", "url", "--name", "x.sh", "--expires-in", "5m"], "--expires-in"),
    (["files", "url", "--name", "x.sh", "--expires-in", "P99999D"], "--expires-in"),
]


@pytest.mark.parametrize("argv, field", [pytest.param(a, f, id=" ".join(a)[:60]) for a, f in CLI])
def test_cli_rejects(home, capsys, files, argv, field):
    for name, path in files.items():
        argv = [a.replace("{" + name + "}", path) for a in argv]
    check(home, capsys, argv, field)


def test_the_corpus_is_large_and_its_cases_distinct():
    keys = [json.dumps(p.values[0], sort_keys=True) for p in MODEL_CASES] + [json.dumps(a) for a, _ in CLI]
    assert len(keys) >= 200 and len(set(keys)) == len(keys)


@pytest.mark.parametrize("doc", [VALID, health_model()], ids=["probe", "agent"])
def test_the_valid_models_are_accepted_so_the_harness_can_tell(home, capsys, tmp_path, doc):
    f = tmp_path / "in" / "ok.json"
    f.write_text(json.dumps(doc))
    before = dump(home.db)
    rc, text = run(capsys, ["create", "--model", str(f)])
    assert rc == 0, text
    assert dump(home.db) != before and TOKEN not in text
    rc, text = run(capsys, ["update", "-n", "fresh", "--set", "sku.name=Lab_1", "--set",
                            "properties.virtualMachineProfile.storageProfile.dataDisks[0].diskSizeGB=2"])
    assert rc == 0, text


def test_valid_flags_are_accepted(home, capsys, files):
    key_file = files["key.txt"].replace("key.txt", "id.pub")
    with open(key_file, "w") as f:
        f.write(KEY + "\n")
    rc, text = run(capsys, [*NEW, "-n", "flags", "--image", f"{P}:{O}:{S}:latest", "--ssh-key-values", KEY, key_file,
                            "--custom-data", files["script.sh"], "--enable-auto-os-upgrade", "FALSE",
                            "--data-disk-sizes-gb", "1", "4", "-l", "local"])
    assert rc == 0, text
    rc, text = run(capsys, ["scale", "-n", "flags", "--new-capacity", "0"])
    assert rc == 0, text
