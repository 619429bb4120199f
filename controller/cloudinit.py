"""cloud-init NoCloud documents (user-data, meta-data, network-config) from jinja2 templates."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import jinja2

from .domain_xml import TEMPLATES

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                          autoescape=False, keep_trailing_newline=True)
# JSON strings are valid YAML scalars: quoting every value keeps model data from injecting YAML.
_env.filters["q"] = lambda v: json.dumps(v if isinstance(v, (int, float, bool)) else str(v))


@dataclass
class SeedSpec:
    instance_id: str
    hostname: str
    admin_user: str
    ssh_keys: list[str]
    mac: str
    runcmd: list[str] = field(default_factory=list)
    write_files: list[dict] = field(default_factory=list)


def render(spec: SeedSpec) -> dict[str, str]:
    ctx = dict(instance_id=spec.instance_id, hostname=spec.hostname, admin_user=spec.admin_user,
               ssh_keys=spec.ssh_keys, mac=spec.mac, runcmd=spec.runcmd, write_files=spec.write_files)
    return {name: _env.get_template(f"{name}.j2").render(**ctx)
            for name in ("user-data", "meta-data", "network-config")}
