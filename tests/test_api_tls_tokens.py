"""The API's TLS material, lab tokens and `scaleset api env|token` (fast: no VM, no libvirt)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import os
import re
import ssl
import stat
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from controller.api import endpoint, tls, tokens
from controller.api.tokens import Unauthorized
from controller.cli import main as cli_main
from controller.core.settings import LabPaths

REPO = Path(__file__).resolve().parent.parent


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


# ---------------------------------------------------------------- TLS material

def test_certs_are_made_once_with_private_keys(lab):
    certs = tls.ensure_certs(lab)
    folder = lab.home / "api"
    assert _mode(folder) == 0o700
    assert _mode(folder / "ca-key.pem") == 0o600 and _mode(certs.key) == 0o600
    assert certs.ca == folder / "ca.pem" and certs.cert == folder / "server.pem"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    again = tls.ensure_certs(lab)
    assert again == certs
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_server_cert_names_only_loopback_and_serves_only(lab):
    certs = tls.ensure_certs(lab)
    cert, ca = _cert(certs.cert), _cert(certs.ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.IPv4Address("127.0.0.1")]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert len(list(sans)) == 2
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(ca)
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 396 <= days <= 397
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3649
    key = serialization.load_pem_private_key(certs.key.read_bytes(), None)
    assert key.curve.name == "secp256r1" and key.public_key() == cert.public_key()


def test_an_expiring_server_cert_is_renewed_and_the_ca_kept(lab):
    certs = tls.ensure_certs(lab)
    ca_bytes = certs.ca.read_bytes()
    ca_key = serialization.load_pem_private_key(certs.ca_key.read_bytes(), None)
    old, key = tls.make_server(_cert(certs.ca), ca_key, tls._now() - timedelta(days=380))  # 17 days left
    tls._write_pair(certs.cert, certs.key, old, key)
    tls.ensure_certs(lab)
    new = _cert(certs.cert)
    assert new.serial_number != old.serial_number
    assert new.not_valid_after_utc - tls._now() > timedelta(days=390)
    assert certs.ca.read_bytes() == ca_bytes
    assert _mode(certs.key) == 0o600


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_a_broken_ca_makes_everything_again(lab, damage):
    certs = tls.ensure_certs(lab)
    old_ca, old_server = certs.ca.read_bytes(), certs.cert.read_bytes()
    if damage == "missing":
        certs.ca_key.unlink()
    else:
        certs.ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
    tls.ensure_certs(lab)
    assert certs.ca.read_bytes() != old_ca and certs.cert.read_bytes() != old_server
    _cert(certs.cert).verify_directly_issued_by(_cert(certs.ca))


@pytest.mark.parametrize("damage", ["other-ca", "no-key", "junk-cert"])
def test_a_bad_server_cert_is_issued_again_by_the_same_ca(lab, tmp_path, damage):
    certs = tls.ensure_certs(lab)
    ca_bytes, old = certs.ca.read_bytes(), certs.cert.read_bytes()
    if damage == "other-ca":
        other = tls.ensure_certs(LabPaths(tmp_path / "other").ensure())
        certs.cert.write_bytes(other.cert.read_bytes())
        certs.key.write_bytes(other.key.read_bytes())
    elif damage == "no-key":
        certs.key.unlink()
    else:
        certs.cert.write_bytes(b"junk")
    tls.ensure_certs(lab)
    assert certs.ca.read_bytes() == ca_bytes and certs.cert.read_bytes() != old and _mode(certs.key) == 0o600
    _cert(certs.cert).verify_directly_issued_by(_cert(certs.ca))
    tls.server_context(certs)  # cert and key belong together


def test_processes_racing_agree_on_one_ca(lab, tmp_path):
    go = tmp_path / "go"
    code = ("import hashlib, os, sys, time; from pathlib import Path; from controller.api.tls import ensure_certs; "
            "from controller.core.settings import LabPaths\n"
            "print('ready', flush=True)\n"
            "while not os.path.exists(sys.argv[2]): time.sleep(0.0005)\n"  # all start together, imports done
            "c = ensure_certs(LabPaths(Path(sys.argv[1])))\n"
            "print(hashlib.sha256(c.ca.read_bytes()).hexdigest())")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(lab.home), str(go)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True) for _ in range(6)]
    assert [p.stdout.readline() for p in procs] == ["ready\n"] * len(procs)  # imports done, all waiting
    go.touch()
    seen = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert seen == {hashlib.sha256((lab.home / "api" / "ca.pem").read_bytes()).hexdigest()}
    certs = tls.ensure_certs(lab)
    _cert(certs.cert).verify_directly_issued_by(_cert(certs.ca))


async def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str) -> bytes:
    async def echo(reader, writer):
        try:
            writer.write(await reader.readline())
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx, server_hostname=hostname)
        try:
            assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
            writer.write(b"ping\n")
            return await reader.readline()
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_a_real_handshake_with_the_lab_ca(lab, hostname):
    certs = tls.ensure_certs(lab)
    server_ctx = tls.server_context(certs)
    assert server_ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert asyncio.run(_handshake(server_ctx, tls.client_context(certs), hostname)) == b"ping\n"


@pytest.mark.parametrize("client, hostname", [("system", "127.0.0.1"), ("lab", "example.com"), ("other", "localhost")])
def test_other_clients_and_names_are_refused(lab, tmp_path, client, hostname):
    """Trusting the system CAs only, a name not in the cert, another lab's CA: each fails to verify."""
    certs = tls.ensure_certs(lab)
    ctx = {"system": ssl.create_default_context, "lab": lambda: tls.client_context(certs),
           "other": lambda: tls.client_context(tls.ensure_certs(LabPaths(tmp_path / "other").ensure()))}[client]()
    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(_handshake(tls.server_context(certs), ctx, hostname))


# ---------------------------------------------------------------- tokens

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict, dict, str]:
    head, body, sig = token.split(".")
    pad = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    return json.loads(pad(head)), json.loads(pad(body)), sig


def _refused(lab: LabPaths, token: str, code: str = "InvalidAuthenticationToken") -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        tokens.verify(lab, token)
    err = info.value
    assert (err.code, err.status, err.field) == (code, 401, "Authorization")
    text = str(err) + json.dumps(err.to_json())
    assert not any(part in text for part in [token, *token.split(".")] if len(part) >= 8)  # nor a piece of it
    key = tokens.lab_key(lab)
    assert key.hex() not in text and _b64(key) not in text
    return err


def test_the_key_is_made_once_private(lab):
    key = tokens.lab_key(lab)
    path = lab.home / "api" / "token.key"
    assert len(key) == 32 and path.read_bytes() == key and _mode(path) == 0o600
    assert tokens.lab_key(lab) == key


def test_a_minted_token_verifies_with_azure_claims(lab):
    token = tokens.mint(lab, 600, subject="alice")
    claims = tokens.verify(lab, token)
    head, body, _ = _parts(token)
    assert head["alg"] == "HS256" and body == claims
    assert claims["tid"] == tokens.TENANT_ID and claims["aud"] == "https://management.azure.com/"
    assert claims["iss"] == "https://scaleset-lab.local/" and claims["appid"] == "scaleset-lab"
    assert claims["idtyp"] == "app" and claims["oid"] == claims["sub"]
    assert claims["exp"] - claims["iat"] == 600 and claims["nbf"] == claims["iat"]
    assert abs(claims["iat"] - time.time()) < 60
    assert tokens.verify(lab, tokens.mint(lab, 600, subject="alice"))["oid"] == claims["oid"]
    assert tokens.verify(lab, tokens.mint(lab, 600, subject="bob"))["oid"] != claims["oid"]
    assert _parts(tokens.mint(lab, 600, subject="alice"))[1]["jti"] != claims["jti"]  # a new jti every time
    assert jwt.decode(token, options={"verify_signature": False})["tid"] == tokens.TENANT_ID  # as az reads it


@pytest.mark.parametrize("ttl", [0, -1, tokens.MAX_TTL + 1, float("nan"), float("inf")])
def test_mint_refuses_a_bad_lifetime(lab, ttl):
    with pytest.raises(tokens.ModelError):
        tokens.mint(lab, ttl)


def test_an_expired_token_is_refused(lab):
    now = int(time.time())
    claims = {**_parts(tokens.mint(lab))[1], "iat": now - 7200, "nbf": now - 7200, "exp": now - 10}
    _refused(lab, jwt.encode(claims, tokens.lab_key(lab), algorithm="HS256"), "ExpiredAuthenticationToken")


def test_a_tampered_payload_or_signature_is_refused(lab):
    token = tokens.mint(lab)
    head, body, sig = token.split(".")
    claims = _parts(token)[1]
    forged = _b64(json.dumps({**claims, "exp": claims["exp"] + 86400}).encode())
    _refused(lab, f"{head}.{forged}.{sig}")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    _refused(lab, f"{head}.{body}.{flipped}")
    _refused(lab, f"{head}.{body}.")


def test_alg_none_is_refused(lab):
    claims = _parts(tokens.mint(lab))[1]
    token = f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}."
    err = _refused(lab, token)
    assert "HS256" in err.reason


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_another_algorithm_with_the_lab_key_is_refused(lab):
    claims = _parts(tokens.mint(lab))[1]
    _refused(lab, jwt.encode(claims, tokens.lab_key(lab), algorithm="HS512"))


def test_a_token_of_another_lab_is_refused(lab, tmp_path):
    other = LabPaths(tmp_path / "other").ensure()
    assert tokens.lab_key(other) != tokens.lab_key(lab)
    _refused(lab, tokens.mint(other))


@pytest.mark.parametrize("claim", ["tid", "exp", "aud", "jti"])
def test_a_token_missing_a_claim_is_refused(lab, claim):
    claims = _parts(tokens.mint(lab))[1]
    del claims[claim]
    err = _refused(lab, jwt.encode(claims, tokens.lab_key(lab), algorithm="HS256"))
    assert claim in err.reason


@pytest.mark.parametrize("text", ["", "abc", "a.b.c", "é.x.y", "x" * 20000])
def test_malformed_tokens_are_refused(lab, text):
    _refused(lab, text)


def test_a_key_made_again_by_another_process_is_picked_up(lab):
    tokens.verify(lab, tokens.mint(lab))  # the key is cached here
    path = lab.home / "api" / "token.key"
    new = os.urandom(32)
    tmp = path.with_name("new")
    tmp.write_bytes(new)
    os.replace(tmp, path)
    token = jwt.encode(_parts(tokens.mint(lab))[1], new, algorithm="HS256")
    assert tokens.verify(lab, token)["tid"] == tokens.TENANT_ID


@pytest.mark.parametrize("header, token", [("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer  t ", "t")])
def test_bearer_takes_the_token(header, token):
    assert tokens.bearer(header) == token


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "abc.def.ghi"])
def test_bearer_refuses_no_bearer_token(header):
    with pytest.raises(Unauthorized) as info:
        tokens.bearer(header)
    err = info.value
    assert (err.code, err.status, err.field) == ("AuthenticationFailed", 401, "Authorization")
    assert "dXNlcjpwYXNz" not in str(err) and "abc.def" not in str(err)


# ---------------------------------------------------------------- endpoint

def test_the_recorded_port_of_a_live_controller_wins(lab, monkeypatch):
    monkeypatch.setenv("SCALESET_API_PORT", "9000")
    assert endpoint.current_port(lab) == 9000
    endpoint.record(lab, 8443)
    doc = json.loads((lab.run / "api.json").read_text())
    assert doc["port"] == 8443 and doc["pid"] == os.getpid()
    assert endpoint.current_port(lab) == 8443
    assert endpoint.endpoint(8443) == "https://127.0.0.1:8443"


def test_a_dead_controller_port_is_ignored(lab, monkeypatch):
    monkeypatch.delenv("SCALESET_API_PORT", raising=False)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (lab.run / "api.json").write_text(json.dumps({"port": 8443, "pid": dead.pid}))
    assert endpoint.current_port(lab) == endpoint.DEFAULT_PORT == 7443
    endpoint.record(lab, 8443)
    doc = json.loads((lab.run / "api.json").read_text())
    (lab.run / "api.json").write_text(json.dumps({**doc, "tag": f"{os.getpid()}:0"}))  # a recycled pid
    assert endpoint.current_port(lab) == 7443


@pytest.mark.parametrize("value", ["0", "65536", "abc", "-1", " ", "7443x"])
def test_a_bad_port_variable_falls_back_to_the_default(lab, monkeypatch, value):
    monkeypatch.setenv("SCALESET_API_PORT", value)
    assert endpoint.current_port(lab) == 7443


# ---------------------------------------------------------------- CLI

@pytest.fixture
def run(capsys):
    """`scaleset ARGS` through cli.main.main: (exit code, stdout, stderr)."""
    def call(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli_main.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    return call


def test_api_env_json_has_exactly_the_five_keys(lab, run, monkeypatch):
    monkeypatch.delenv("SCALESET_API_PORT", raising=False)
    code, out, err = run("api", "env", "-o", "json")
    assert code == 0, err
    values = json.loads(out)
    assert sorted(values) == ["caCertPath", "endpoint", "resourceGroup", "subscriptionId", "token"]
    assert values["endpoint"] == "https://127.0.0.1:7443"
    assert values["caCertPath"] == str(lab.home / "api" / "ca.pem") and Path(values["caCertPath"]).is_file()
    assert values["subscriptionId"] == tokens.SUBSCRIPTION_ID and values["resourceGroup"] == "scaleset-lab"
    claims = tokens.verify(lab, values["token"])
    assert claims["exp"] - claims["iat"] == 3600
    key = tokens.lab_key(lab)
    assert key.hex() not in out and _b64(key) not in out and base64.b64encode(key).decode() not in out


def test_api_env_shell_lines_evaluate(tmp_path, run, monkeypatch):
    home = tmp_path / "it's a $HOME"  # quoted, not expanded
    monkeypatch.setenv("SCALESET_HOME", str(home))
    monkeypatch.setenv("SCALESET_API_PORT", "8123")
    code, out, err = run("api", "env")
    assert code == 0, err
    assert all(line.startswith("export ") for line in out.splitlines()) and len(out.splitlines()) == 5
    names = ["SCALESET_API_ENDPOINT", "SCALESET_API_CA_CERT", "AZURE_SUBSCRIPTION_ID", "SCALESET_RESOURCE_GROUP",
             "SCALESET_API_TOKEN"]
    script = 'eval "$1"; ' + "; ".join(f'printf "%s\\n" "${n}"' for n in names)
    shown = subprocess.run(["bash", "-c", script, "-", out], capture_output=True, text=True, check=True,
                           env={"PATH": os.environ["PATH"]}).stdout.splitlines()
    assert shown[:4] == ["https://127.0.0.1:8123", str(home / "api" / "ca.pem"), tokens.SUBSCRIPTION_ID,
                         "scaleset-lab"]
    assert tokens.verify(LabPaths(home), shown[4])["tid"] == tokens.TENANT_ID


def test_api_token_prints_one_token(lab, run):
    code, out, err = run("api", "token", "--expires-in", "P1D")
    assert code == 0, err
    assert out.count("\n") == 1 and re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+\n", out)
    claims = tokens.verify(lab, out.strip())
    assert claims["exp"] - claims["iat"] == 86400
    code, out, _ = run("api", "token")
    assert code == 0 and tokens.verify(lab, out.strip())["exp"] - tokens.verify(lab, out.strip())["iat"] == 3600


@pytest.mark.parametrize("value", ["PT0S", "nonsense", "P400D", "P31D", ""])
def test_api_token_refuses_a_bad_lifetime(lab, run, value):
    code, out, err = run("api", "token", "--expires-in", value)
    assert code == 1 and out == ""
    assert re.match(r"ERROR: \(\w+\) --expires-in: ", err), err
    assert "Traceback" not in err

