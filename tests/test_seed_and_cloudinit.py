import io

import pycdlib
import yaml

from controller.virt.cloudinit import SeedSpec, render
from controller.virt.seed import seed_iso


def test_seed_is_a_cidata_iso_with_the_three_files():
    data = seed_iso("#cloud-config\n{}\n", "instance-id: i-1\n", "version: 2\n")
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        for name, want in (("user-data", "#cloud-config"), ("meta-data", "instance-id: i-1"),
                           ("network-config", "version: 2")):
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, rr_path=f"/{name}")
            assert buf.getvalue().decode().startswith(want)
    finally:
        iso.close()


def test_values_cannot_inject_yaml():
    evil = 'azureuser"\nruncmd: [[sh, -c, "rm -rf /"]]\nx: "'
    docs = render(SeedSpec(instance_id="i-1\nlocal-hostname: evil", hostname="vm-0", admin_user=evil,
                           ssh_keys=["ssh-ed25519 AAAA lab", "key: with: colons"], mac="52:54:00:00:00:01",
                           runcmd=["echo 'hi' # not a comment"]))
    ud = yaml.safe_load(docs["user-data"])
    assert docs["user-data"].startswith("#cloud-config\n")
    assert ud["users"][0]["name"] == evil
    assert ud["users"][0]["ssh_authorized_keys"] == ["ssh-ed25519 AAAA lab", "key: with: colons"]
    assert ud["runcmd"] == ["echo 'hi' # not a comment"]
    assert ud["ssh_pwauth"] is False and ud["users"][0]["lock_passwd"] is True
    md = yaml.safe_load(docs["meta-data"])
    assert md == {"instance-id": "i-1\nlocal-hostname: evil", "local-hostname": "vm-0"}
    net = yaml.safe_load(docs["network-config"])
    assert net["ethernets"]["nic0"]["match"]["macaddress"] == "52:54:00:00:00:01"


def test_cloud_config_extensions_and_custom_data_become_mime_parts_that_append():
    from email import message_from_string

    from controller.virt.cloudinit import SeedSpec, render
    docs = render(SeedSpec(instance_id="i-1", hostname="web000000", admin_user="azureuser", ssh_keys=["ssh-ed25519 A"],
                           mac="52:54:00:00:00:01", runcmd=["python3 /x"], custom_data=b"#!/bin/sh\necho hi\n",
                           cloud_configs=["packages: []\nruncmd: [echo ext]\n"]))
    msg = message_from_string(docs["user-data"])
    parts = [(p.get_content_type(), p.get("Merge-Type"), p.get_payload(decode=True).decode())
             for p in msg.walk() if not p.is_multipart()]
    assert [t for t, _, _ in parts] == ["text/cloud-config", "text/cloud-config", "text/x-shellscript"]
    assert parts[1][1].startswith("list(append)") and parts[1][2].startswith("#cloud-config\n")
    assert "python3 /x" in parts[0][2] and parts[2][2] == "#!/bin/sh\necho hi\n"
