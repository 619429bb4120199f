"""cloud-init NoCloud documents (user-data, meta-data, network-config) from jinja2 templates."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import jinja2

from controller.virt.domain_xml import TEMPLATES

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                          autoescape=False, keep_trailing_newline=True)
# JSON strings are valid YAML scalars: quoting every value keeps model data from injecting YAML.
_env.filters["q"] = lambda v: json.dumps(v if isinstance(v, (int, float, bool)) else str(v))


# bootcmd (every boot, before the other modules) when osDisk.diskSizeGB asks for more than the
# image: the root partition (vda1, the lab's MBR layout) is grown to the disk's end, then its ext4
# (online). The image has no growpart (cloud-guest-utils): Python and util-linux do it.
GROW_ROOT = r"""
import os, struct, subprocess
root = subprocess.run(["findmnt", "-no", "SOURCE", "/"], capture_output=True, text=True).stdout.strip()
fd = os.open("/dev/vda", os.O_RDWR)
mbr = bytearray(os.pread(fd, 512, 0))
start, count = struct.unpack_from("<II", mbr, 454)
sectors = min(os.lseek(fd, 0, os.SEEK_END) // 512, 2**32 - 1) - start
if root == "/dev/vda1" and mbr[510:512] == b"\x55\xaa" and sectors > count:
    struct.pack_into("<I", mbr, 458, sectors)
    os.pwrite(fd, bytes(mbr), 0)
    os.fsync(fd)
    subprocess.run(["resizepart", "/dev/vda", "1", str(sectors)], check=True)
    subprocess.run(["resize2fs", "/dev/vda1"], check=True)
os.close(fd)
"""


@dataclass
class SeedSpec:
    instance_id: str
    hostname: str
    admin_user: str
    ssh_keys: list[str]
    mac: str
    runcmd: list[str] = field(default_factory=list)
    write_files: list[dict] = field(default_factory=list)
    custom_data: bytes | None = None  # the model's customData, decoded: handed to cloud-init as is
    cloud_configs: list[str] = field(default_factory=list)  # CloudConfig extensions' documents
    grow_root: bool = False  # osDisk.diskSizeGB is set: grow the root partition to the disk
    password_hash: str | None = None  # osProfile.adminPasswordHash (SHA-512 crypt): password logins


# With a password: sshd takes the first value it reads, and the image's sshd_config.d/50-scaleset-lab.conf
# says no; the image runs no set_passwords module (ssh_pwauth): this drop-in, read first, says yes.
SSHD_PASSWORDS = {"path": "/etc/ssh/sshd_config.d/40-scaleset-lab-password.conf", "permissions": "0644",
                  "content": "PasswordAuthentication yes\n"}


def render(spec: SeedSpec) -> dict[str, str]:
    files = spec.write_files + ([SSHD_PASSWORDS] if spec.password_hash else [])
    ctx = dict(instance_id=spec.instance_id, hostname=spec.hostname, admin_user=spec.admin_user,
               ssh_keys=spec.ssh_keys, mac=spec.mac, runcmd=spec.runcmd,
               write_files=[{"encoding": None, **f} for f in files],
               bootcmd=[["python3", "-c", GROW_ROOT]] if spec.grow_root else [], password_hash=spec.password_hash)
    docs = {name: _env.get_template(f"{name}.j2").render(**ctx)
            for name in ("user-data", "meta-data", "network-config")}
    if spec.custom_data or spec.cloud_configs:
        docs["user-data"] = multipart(docs["user-data"], spec.custom_data, spec.cloud_configs)
    return docs


def _part(text: str, filename: str) -> MIMEText:
    subtype = "cloud-config" if text.startswith("#cloud-config") else (
        "x-shellscript" if text.startswith("#!") else "plain")
    part = MIMEText(text, subtype, "utf-8")
    part.add_header("Content-Disposition", "attachment", filename=filename)
    if subtype == "cloud-config":  # append to the lab's lists (runcmd, users) instead of replacing them
        part.add_header("Merge-Type", "list(append)+dict(no_replace,recurse_list)+str()")
    return part


def multipart(cloud_config: str, custom_data: bytes | None, cloud_configs: list[str] | None = None) -> str:
    """The lab's cloud-config, CloudConfig extensions and the user's customData in one MIME
    document (cloud-init reads each part by its own header: #cloud-config, #!, ...)."""
    msg = MIMEMultipart()
    msg.attach(MIMEText(cloud_config, "cloud-config", "utf-8"))
    for i, text in enumerate(cloud_configs or []):
        msg.attach(_part(text if text.startswith("#cloud-config") else "#cloud-config\n" + text, f"extension-{i}"))
    if custom_data:
        msg.attach(_part(custom_data.decode("utf-8", errors="replace"), "customData"))
    return msg.as_string()
