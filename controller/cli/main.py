"""`scaleset`: the command line, named and shaped after `az vmss` / `az sig`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from controller.cli import api as cli_api
from controller.cli import dashboard as cli_dashboard
from controller.cli import files as cli_files
from controller.cli import guard, inputs
from controller.cli import region as cli_region
from controller.cli import rehearse as cli_rehearse
from controller.cli import replicas as cli_replicas
from controller.cli import upgrade as cli_upgrade
from controller.cli import vmss as cli_vmss
from controller.core.errors import ImageError
from controller.ops import replication
from controller.ops.lab import Lab
from controller.virt import accel


def _region(text: str) -> str:
    """argparse type of --target-regions: checked before a build starts, not after it ends."""
    from images.gallery import check_name
    try:
        return check_name("--target-regions", text)
    except ImageError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None


def _print(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _gallery():
    return Lab.open().gallery


def cmd_accel(args) -> int:
    a = accel.detect()
    print(f"accel: {a.kind} ({a.reason})")
    return 0


def cmd_image_build(args) -> int:
    from images.builder import build
    lab = Lab.open()
    iv = build(lab.gallery, args.publisher, args.offer, args.sku, args.version,
               customize=args.customize, recipe_name=args.recipe, target_regions=args.target_regions, log=_log)
    _print(iv.to_json())
    cli_replicas.published(lab, iv)
    return 0


def cmd_image_import(args) -> int:
    from images.source import check_source
    lab = Lab.open()
    lab.gallery.check_new(args.publisher, args.offer, args.sku, args.version)
    source = check_source(args.file, "--file", lab.paths.home)  # as the API checks it: a self-contained qcow2
    iv = lab.gallery.import_file(args.publisher, args.offer, args.sku, args.version, source,
                                 target_regions=args.target_regions)
    _print(iv.to_json())
    cli_replicas.published(lab, iv)
    return 0


def cmd_image_replicate(args) -> int:
    lab = Lab.open()
    iv = lab.gallery.get(args.publisher, args.offer, args.sku, args.version)
    cli_replicas.replicate(lab, iv, args.region, _print)
    return 0


def cmd_image_list(args) -> int:
    _print([iv.to_json() for iv in _gallery().list(args.publisher, args.offer, args.sku)])
    return 0


def cmd_image_show(args) -> int:
    lab = Lab.open()
    g = lab.gallery
    iv = g.resolve(args.publisher, args.offer, args.sku, args.version) if args.version.lower() == "latest" \
        else g.get(args.publisher, args.offer, args.sku, args.version)
    out = iv.to_json()
    if args.expand:
        out["replicationStatus"] = replication.replication_status(lab, iv)
    _print(out)
    return 0


def cmd_image_update(args) -> int:
    lab = Lab.open()
    iv = lab.gallery.update(args.publisher, args.offer, args.sku, args.version,
                            exclude_from_latest=args.exclude_from_latest, target_regions=args.target_regions)
    _print(iv.to_json())
    if args.target_regions is not None:
        cli_replicas.updated(lab, iv)
    return 0


def cmd_image_export(args) -> int:
    from images import vagrantbox
    g = _gallery()
    iv = g.verify(g.resolve(args.publisher, args.offer, args.sku, args.version) if args.version.lower() == "latest"
                  else g.get(args.publisher, args.offer, args.sku, args.version))
    out = vagrantbox.export(iv, args.output.resolve())
    _log(f"exported {iv.urn} as a vagrant-libvirt box: {out} ({out.stat().st_size / 1e6:.0f} MB); "
         f"add it with: vagrant box add --name NAME {out}")
    return 0


def cmd_image_delete(args) -> int:
    lab = Lab.open()
    iv = replication.delete_version(lab, lab.gallery.get(args.publisher, args.offer, args.sku, args.version))
    _log(f"deleted {iv.urn} and its replicas")
    return 0


def _image_ref(p: argparse.ArgumentParser, version: bool = True) -> None:
    p.add_argument("--publisher", required=True)
    p.add_argument("--offer", required=True)
    p.add_argument("--sku", required=True)
    if version:
        p.add_argument("--version", required=True, help="MAJOR.MINOR.PATCH")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="scaleset", description="Rolling OS-image upgrades of VM scale sets on libvirt.")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("accel", help="say which acceleration (kvm or tcg) guests use here")
    p.set_defaults(func=cmd_accel)

    image = sub.add_parser("image", help="build, import and list image versions").add_subparsers(dest="image_cmd", required=True)
    p = image.add_parser("build", help="build an image version from Debian packages (needs root)")
    _image_ref(p)
    p.add_argument("--customize", action="append", type=Path, default=[], metavar="SCRIPT",
                   help="shell script run inside the image root after packages (repeatable)")
    p.add_argument("--recipe", help="recipe name (default: the recipe named like --sku, or listing it in "
                                    "its skus, else debian-12)")
    p.add_argument("--target-regions", nargs="+", type=_region, metavar="REGION")
    p.set_defaults(func=cmd_image_build)

    p = image.add_parser("import", help="import a self-contained qcow2 as an image version")
    _image_ref(p)
    p.add_argument("--file", required=True, type=Path)
    p.add_argument("--target-regions", nargs="+", type=_region, metavar="REGION")
    p.set_defaults(func=cmd_image_import)

    p = image.add_parser("list", help="list image versions (JSON)")
    p.add_argument("--publisher")
    p.add_argument("--offer")
    p.add_argument("--sku")
    p.set_defaults(func=cmd_image_list)

    p = image.add_parser("show", help="show one image version ('latest' resolves)")
    _image_ref(p)
    p.add_argument("--expand", choices=["ReplicationStatus"], help="add the version's replicationStatus")
    p.set_defaults(func=cmd_image_show)

    p = image.add_parser("replicate", help="replicate a version to the hosts of its configured target regions "
                                           "again (a verified copy is not uploaded again)")
    _image_ref(p)
    p.add_argument("--region", nargs="+", metavar="REGION", help="only these target regions")
    p.set_defaults(func=cmd_image_replicate)

    p = image.add_parser("update", help="change exclude-from-latest or target regions of a version")
    _image_ref(p)
    p.add_argument("--exclude-from-latest", type=inputs.boolean, metavar="true|false")
    p.add_argument("--target-regions", nargs="+", type=_region, metavar="REGION")
    p.set_defaults(func=cmd_image_update)
    p = image.add_parser("export", help="write a version as a vagrant-libvirt box (build it with "
                                        "--customize images/customize/vagrant.sh)")
    _image_ref(p)
    p.add_argument("--format", required=True, choices=["vagrant-box"], help="what to write")
    p.add_argument("--output", "-o", required=True, type=Path, metavar="FILE", help="the box file to write")
    p.set_defaults(func=cmd_image_export)
    p = image.add_parser("delete", help="delete a version no instance uses, and its replicas on every host")
    _image_ref(p)
    p.set_defaults(func=cmd_image_delete)
    cli_vmss.register(sub)
    cli_upgrade.register(sub)
    cli_files.register(sub)
    cli_api.register(sub)
    cli_dashboard.register(sub)
    cli_rehearse.register(sub)
    cli_region.register(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    """Exit code of one command; errors are one `ERROR: (Code) ...` line (cli/guard.py)."""
    def command() -> int:
        args = parser().parse_args(argv)
        return args.func(args)
    return guard.run(command, entry=argv is None)


if __name__ == "__main__":
    sys.exit(main())
