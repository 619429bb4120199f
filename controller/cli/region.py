"""`scaleset region add|list|show|remove`: regions of libvirt hosts (`local` is always there)."""
from __future__ import annotations

import argparse
import sys

from controller.cli.vmss import out
from controller.core.errors import HypervisorError, ModelError
from controller.model.region import Host, Region, is_local, validate_region
from controller.ops.lab import Lab
from controller.virt import hostcheck

LIST_COLUMNS = [("Name", "name"), ("Configured", "configured"), ("Hosts", "hostCount")]
HOST_COLUMNS = [("Region", "region"), ("FD", "faultDomain"), ("Uri", "uri"), ("Pool", "pool"),
                ("PoolPath", "poolPath"), ("Ssh", "ssh"), ("Answers", "status.answers"),
                ("PoolState", "status.pool"), ("Reason", "status.reason")]
# The model fields the flags of `add` fill, so an error names the flag (and the field).
_FLAG_OF = (("$.name", "--name"), ("$.hosts", "--host"))
_HOST_FLAG = {"uri": "--host", "pool": "--pool", "poolPath": "--pool-path", "ssh": "--ssh"}


def _paired(flag: str, values: list[str] | None, n: int, one_for_all: bool = True) -> list[str | None]:
    """A flag's value per host: not given, given once (for every host), or once per host in order."""
    if not values:
        return [None] * n
    if len(values) == n:
        return list(values)
    if len(values) == 1 and one_for_all:
        return values * n
    once = "once (for every host) or " if one_for_all else ""
    raise ModelError(flag, f"given {len(values)} times for {n} --host: give it {once}once per --host, in order")


def _flagged(exc: ModelError) -> ModelError:
    """A model error of `add` as an error of the flag that set the field."""
    field = exc.field
    flag = _HOST_FLAG.get(field.rsplit(".", 1)[-1]) if field.startswith("$.hosts[") else None
    flag = flag or next((f for prefix, f in _FLAG_OF if field.startswith(prefix)), None)
    if flag is None:
        return exc
    return ModelError(flag, f"{exc.reason} ({field})", exc.code)


def region_from_args(args) -> Region:
    n = len(args.host)
    pools = _paired("--pool", args.pool, n)
    paths = _paired("--pool-path", args.pool_path, n)
    sshs = _paired("--ssh", args.ssh, n, one_for_all=False)
    region = Region(args.name, tuple(Host(u, p, d, s) for u, p, d, s in zip(args.host, pools, paths, sshs,
                                                                              strict=True)))
    try:
        validate_region(region)
    except ModelError as exc:
        raise _flagged(exc) from None
    return region


def _host_rows(region: Region, statuses: list[hostcheck.HostStatus] | None) -> list[dict]:
    rows = region.to_json()["hosts"]
    for i, row in enumerate(rows):
        row["region"] = region.name
        if statuses is not None:
            row["status"] = statuses[i].to_json()
    return rows


def _shown(args, region: Region, statuses: list[hostcheck.HostStatus] | None) -> None:
    rows = _host_rows(region, statuses)
    if args.output == "table":
        out(args, rows, HOST_COLUMNS)
    else:
        out(args, {**region.to_json(), "hosts": [{k: v for k, v in r.items() if k != "region"} for r in rows]})


def cmd_add(args) -> int:
    region = region_from_args(args)
    lab = Lab.open()
    try:
        lab.regions.check_new(region.name)  # a taken name is refused before any host is touched
        statuses = None
        if not args.no_check:
            statuses = hostcheck.probe_all(region.hosts, create=True)
            for host, st in zip(region.hosts, statuses, strict=True):
                if st.reason is not None:
                    raise HypervisorError(f"{st.reason} (--no-check adds the region without looking)",
                                          field=host.uri)
        added = lab.regions.add(region)
    except ModelError as exc:
        raise _flagged(exc) from None
    _shown(args, added, statuses)
    return 0


def cmd_list(args) -> int:
    regions = Lab.open().regions.list()
    out(args, [{**r.to_json(), "hostCount": len(r.hosts)} for r in regions], LIST_COLUMNS)
    return 0


def cmd_show(args) -> int:
    lab = Lab.open()
    region = lab.regions.get(args.name)
    if not region.configured and not is_local(args.name):
        raise ModelError("--name", f"region '{args.name}' not found: a location that names no configured region "
                                   "runs on the local host (scaleset region list)", "ResourceNotFound")
    _shown(args, region, hostcheck.probe_all(region.hosts))
    return 0


def cmd_remove(args) -> int:
    region = Lab.open().regions.remove(args.name)
    print(f"removed region {region.name} ({len(region.hosts)} host(s)); nothing on the hosts was changed",
          file=sys.stderr)
    return 0


def register(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-o", "--output", choices=("json", "table"), default="json")
    named = argparse.ArgumentParser(add_help=False, parents=[common])
    named.add_argument("--name", "-n", required=True, help="region name")
    region = sub.add_parser("region", help="regions: sets of libvirt hosts a scale set's location can name")
    cmds = region.add_subparsers(dest="region_cmd", required=True)

    p = cmds.add_parser("add", parents=[named], help="add a region; each host is checked unless --no-check")
    p.add_argument("--host", action="append", required=True, metavar="URI",
                   help="libvirt URI of a host, e.g. qemu+ssh://root@h1/system (repeat: one fault domain each)")
    p.add_argument("--pool", action="append", required=True, metavar="POOL",
                   help="storage pool on the host: once for every host, or once per --host in order")
    p.add_argument("--pool-path", action="append", metavar="DIR",
                   help="make a dir pool here if the pool is missing (once, or once per --host)")
    p.add_argument("--ssh", action="append", metavar="[USER@]HOST[:PORT]",
                   help="SSH target for tunnels to the host's guests, once per --host "
                        "(default: a qemu+ssh URI's user, host and port)")
    p.add_argument("--no-check", action="store_true", help="do not connect to the hosts")
    p.set_defaults(func=cmd_add)

    p = cmds.add_parser("list", parents=[common], help="local and the configured regions")
    p.set_defaults(func=cmd_list)
    p = cmds.add_parser("show", parents=[named], help="a region's hosts and whether each answers now")
    p.set_defaults(func=cmd_show)
    p = cmds.add_parser("remove", parents=[named], help="remove a region no scale set is located in")
    p.set_defaults(func=cmd_remove)
