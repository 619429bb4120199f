"""The `az vmss`-shaped commands of `scaleset` (create, show, reimage, ...)."""
from __future__ import annotations

import argparse
import base64
import json
import re
import sys

from controller.cli.inputs import (
    boolean,
    check_range,
    check_seconds,
    read_file,
    read_text,
)
from controller.core import signals
from controller.core.errors import ModelError
from controller.model.instance import resolve_ids
from controller.model.jsonmap import MAX_JSON_BYTES, load_json
from controller.model.scaleset import parse
from controller.ops import commands as ops
from controller.ops import views
from controller.ops.health import Monitor
from controller.ops.lab import Lab
from controller.ops.protection import set_protection
from controller.ops.views import vm_health

SHOW_COLUMNS = [("Name", "name"), ("Capacity", "sku.capacity"), ("Mode", "properties.upgradePolicy.mode"),
                ("ProvisioningState", "properties.provisioningState")]


INSTANCE_COLUMNS = [("InstanceId", "instanceId"), ("Name", "name"), ("ComputerName", "osProfile.computerName"),
                    ("ProvisioningState", "provisioningState"), ("LatestModelApplied", "latestModelApplied"),
                    ("Image", "storageProfile.imageReference.exactVersion"), ("Health", "lab.health"),
                    ("HealthSince", "lab.healthSince"), ("ProtectFromScaleIn", "protectionPolicy.protectFromScaleIn"),
                    ("ProtectFromScaleSetActions", "protectionPolicy.protectFromScaleSetActions")]
VIEW_COLUMNS = [("InstanceId", "instanceId"), ("ComputerName", "computerName"), ("UD", "platformUpdateDomain"),
                ("FD", "platformFaultDomain"), ("Provisioning", "statuses.0"), ("Power", "statuses.1"),
                ("RunningImage", "runningImage.version"), ("LatestModelApplied", "latestModelApplied"),
                ("Health", "vmHealth.status.code")]


def out(args, obj, columns=None) -> None:
    """JSON (default) or, with `-o table`, one line per object."""
    if getattr(args, "output", "json") == "table" and columns:
        rows = obj if isinstance(obj, list) else [obj]
        flat = [{**r, "statuses": {str(i): s.get("code") for i, s in enumerate(r.get("statuses", []))}}
                for r in rows]
        print(views.table(flat, columns))
        return
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _lab() -> Lab:
    return Lab.open()


def _prefix(name: str) -> str:
    p = re.sub(r"[^A-Za-z0-9-]", "", name)[:9]
    return p if p[:1].isalpha() else ("vm" + p)[:9]


def _image(urn: str) -> dict:
    parts = urn.split(":")
    if len(parts) != 4 or not all(parts):
        raise ModelError("--image", f"'{urn}' is not PUBLISHER:OFFER:SKU:VERSION")
    return dict(zip(("publisher", "offer", "sku", "version"), parts, strict=True))


_VMP = "$.properties.virtualMachineProfile"
# The model fields `create`'s flags fill, so a model error names the flag that set the field.
_FLAG_OF = (("$.name", "--name"), ("$.location", "--location"), ("$.sku.capacity", "--instance-count"),
            (f"{_VMP}.storageProfile.imageReference", "--image"),
            (f"{_VMP}.storageProfile.dataDisks", "--data-disk-sizes-gb"),
            (f"{_VMP}.osProfile.computerNamePrefix", "--computer-name-prefix"),
            (f"{_VMP}.osProfile.adminUsername", "--admin-username"),
            (f"{_VMP}.osProfile.customData", "--custom-data"),
            (f"{_VMP}.osProfile.linuxConfiguration.ssh", "--ssh-key-values"),
            ("$.properties.upgradePolicy.automaticOSUpgradePolicy", "--enable-auto-os-upgrade"),
            ("$.properties.upgradePolicy.mode", "--upgrade-policy-mode"))


def _ssh_key(value: str) -> str:
    """A key line given inline ('TYPE BASE64 [comment]': it has a space), or the file holding it."""
    if " " in value.strip():
        return value.strip()
    return read_text(value, "--ssh-key-values", 16 * 1024).strip()


def document_from_args(args) -> dict:
    if args.model:
        doc = load_json(read_file(args.model, "--model", MAX_JSON_BYTES), "--model")
        if not isinstance(doc, dict):
            raise ModelError("--model", "must hold a JSON object (the scale-set document)")
        if args.name:
            doc["name"] = args.name
        return doc
    if not args.name or not args.image:
        raise ModelError("--name" if not args.name else "--image", "required unless --model is given")
    os_profile = {"computerNamePrefix": args.computer_name_prefix or _prefix(args.name),
                  "adminUsername": args.admin_username}
    if args.custom_data:
        os_profile["customData"] = base64.b64encode(read_file(args.custom_data, "--custom-data", 65535)).decode()
    if args.ssh_key_values:
        keys = [{"keyData": _ssh_key(k), "path": f"/home/{args.admin_username}/.ssh/authorized_keys"}
                for k in args.ssh_key_values]
        os_profile["linuxConfiguration"] = {"ssh": {"publicKeys": keys}}
    return {
        "name": args.name, "location": args.location, "sku": {"capacity": args.instance_count},
        "properties": {
            "upgradePolicy": {"mode": args.upgrade_policy_mode,
                              "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": args.enable_auto_os_upgrade}},
            "virtualMachineProfile": {
                "storageProfile": {"imageReference": _image(args.image),
                                   "dataDisks": [{"lun": i, "diskSizeGB": g}
                                                 for i, g in enumerate(args.data_disk_sizes_gb or [])]},
                "osProfile": os_profile}}}


def _show(lab: Lab, name: str) -> dict:
    ss = lab.models.get(name)
    return views.show(ss, lab.instances.list(ss.name))


def _instances(lab: Lab, name: str, insts=None) -> list[dict]:
    ss = lab.models.get(name)
    insts = insts if insts is not None else lab.instances.list(ss.name)
    health = ops.poll_health(lab, ss, insts=insts) if insts else {}
    return [views.instance(ss, i, health.get(i.instance_id)) for i in insts]


def _checked(args, doc: dict) -> dict:
    """The document `create` built from flags, validated: an error names the flag (and the field)."""
    try:
        parse(doc)
    except ModelError as exc:
        flag = next((f for prefix, f in _FLAG_OF if exc.field.startswith(prefix)), None)
        if flag is None or args.model:
            raise
        raise ModelError(flag, f"{exc.reason} ({exc.field})", exc.code) from None
    return doc


def cmd_create(args) -> int:
    lab = _lab()
    ss = ops.create(lab, _checked(args, document_from_args(args)))
    failed = [i for i in lab.instances.list(ss.name) if i.provisioning_state != "Succeeded"]
    for i in failed:
        print(f"instance {i.instance_id}: {i.provisioning_state}: {i.error}", file=sys.stderr)
    out(args, _show(lab, ss.name), SHOW_COLUMNS)
    return 1 if failed else 0


def cmd_update(args) -> int:
    """The model (--set), or with --instance-id the instance's protection (as az vmss update)."""
    if args.instance_id is not None:
        if args.set:
            raise ModelError("--set", "with --instance-id the lab changes only the instance's protection "
                                      "(--protect-from-scale-in, --protect-from-scale-set-actions)")
        return cmd_instance_update(args)
    if args.protect_from_scale_in is not None or args.protect_from_scale_set_actions is not None:
        raise ModelError("--instance-id", "protection applies to an instance, not the model: name it with --instance-id")
    if not args.set:
        raise ModelError("--set", "give PATH=VALUE (or --instance-id with a --protect-from-... flag)")
    lab = _lab()
    ops.update_model(lab, args.name, args.set)
    out(args, _show(lab, args.name), SHOW_COLUMNS)
    return 0


def cmd_instance_update(args) -> int:
    """An instance's protectionPolicy; prints the instance as list-instances does."""
    if args.protect_from_scale_in is None and args.protect_from_scale_set_actions is None:
        raise ModelError("--protect-from-scale-in", "give it or --protect-from-scale-set-actions (true or false)")
    lab = _lab()
    inst = set_protection(lab, args.name, args.instance_id, args.protect_from_scale_in,
                          args.protect_from_scale_set_actions)
    out(args, _instances(lab, args.name, [inst])[0], INSTANCE_COLUMNS)
    return 0


def _protection_flags(p: argparse.ArgumentParser) -> None:
    actions = "upgrades, reimage and update-instances of the set, and scale-in"
    for flag, what in (("--protect-from-scale-in", "scale-in"), ("--protect-from-scale-set-actions", actions)):
        p.add_argument(flag, type=boolean, metavar="true|false", help=f"protect the instance from {what}")


def cmd_extension_set(args) -> int:
    lab = _lab()

    def js(field: str, text: str | None) -> dict | None:
        if text is None:
            return None
        # the text may be a secret: errors name the field, never echo the value
        value = load_json(read_file(text[1:], field, MAX_JSON_BYTES) if text.startswith("@") else text, field)
        if not isinstance(value, dict):
            raise ModelError(field, "must be a JSON object")
        return value

    props = {"publisher": args.publisher, "type": args.name, "typeHandlerVersion": args.version,
             "settings": js("--settings", args.settings) or {},
             "provisionAfterExtensions": args.provision_after_extensions or []}
    protected = js("--protected-settings", args.protected_settings)
    if protected is not None:
        props["protectedSettings"] = protected
    ops.set_extension(lab, args.vmss_name, args.extension_instance_name or args.name, props)
    out(args, _show(lab, args.vmss_name), SHOW_COLUMNS)
    return 0


def cmd_show(args) -> int:
    out(args, _show(_lab(), args.name), SHOW_COLUMNS)
    return 0


def cmd_list(args) -> int:
    lab = _lab()
    good, bad = lab.models.scan()
    for exc in bad:  # one damaged model never hides the others
        print(f"WARNING: {exc}", file=sys.stderr, flush=True)
    out(args, [views.show(ss, lab.instances.list(ss.name)) for ss in good], SHOW_COLUMNS)
    return 0


def cmd_list_instances(args) -> int:
    out(args, _instances(_lab(), args.name), INSTANCE_COLUMNS)
    return 0


def cmd_get_instance_view(args) -> int:
    lab = _lab()
    ss = lab.models.get(args.name)
    insts = lab.instances.list(ss.name)
    hs = lab.states(insts)
    states = hs.states
    if args.instance_id is None:
        out(args, views.aggregate_view(ss, insts, states))
        return 0
    chosen = [i if i.domain in hs.unreachable else ops.refresh(lab, i)  # a dead host costs one wait, not one each
              for i in resolve_ids(insts, [args.instance_id], "--instance-id")]
    health = ops.poll_health(lab, ss, insts=chosen)
    result = [views.instance_view(ss, i, states[i.domain], vm_health(health.get(i.instance_id)),
                                  hs.unreachable.get(i.domain)) for i in chosen]
    out(args, result if args.instance_id == "*" else result[0], VIEW_COLUMNS)
    return 0


def cmd_health(args) -> int:
    check_seconds("--interval", args.interval)
    lab = _lab()
    ss = lab.models.get(args.name)
    monitor = Monitor(ss)
    while True:
        insts = lab.instances.list(ss.name)
        readings = ops.poll_health(lab, ss, monitor, insts)
        rows = [{"instanceId": i.instance_id, "computerName": i.computer_name, **vars(readings[i.instance_id])}
                for i in insts]
        if args.output == "json" and not args.watch:
            out(args, rows)
            return 0
        if args.watch and sys.stdout.isatty():
            sys.stdout.write("\x1b[H\x1b[2J")
        print(views.table(rows, [("InstanceId", "instanceId"), ("ComputerName", "computerName"),
                                 ("Health", "state"), ("Since", "since"), ("Source", "source"),
                                 ("Detail", "detail")]), flush=True)
        if not args.watch:
            return 0
        print(flush=True)
        signals.sleep(args.interval)


def cmd_scale(args) -> int:
    check_range("--new-capacity", args.new_capacity, 0, 1000)
    lab = _lab()
    ops.scale(lab, args.name, args.new_capacity)
    out(args, _show(lab, args.name), SHOW_COLUMNS)
    return 0


def _report(args, lab: Lab, insts) -> int:
    out(args, _instances(lab, args.name, insts), INSTANCE_COLUMNS)
    return 1 if any(i.provisioning_state == "Failed" for i in insts) else 0


def cmd_power(args) -> int:
    lab = _lab()
    return _report(args, lab, ops.power(lab, args.name, args.instance_ids, args.action))


def _skipped(lab: Lab, name: str, ids, update_domain: int | None = None) -> None:
    """Say which instances an action on the whole set left out (protected from scale-set actions)."""
    if ids not in (None, [], ["*"]):
        return
    left = [str(i.instance_id) for i in lab.instances.list(lab.models.get(name).name)
            if i.protect_from_scale_set_actions and update_domain in (None, i.update_domain)]
    if left:
        print(f"skipped instance(s) {', '.join(left)}: protected from scale-set actions", file=sys.stderr)


def cmd_reimage(args) -> int:
    lab = _lab()
    insts = ops.reimage(lab, args.name, args.instance_ids)
    _skipped(lab, args.name, args.instance_ids)
    return _report(args, lab, insts)


def cmd_update_instances(args) -> int:
    lab = _lab()
    if not args.instance_ids and args.update_domain is None:
        raise ModelError("--instance-ids", "name instances ('*' for all) or an --update-domain")
    insts = ops.update_instances(lab, args.name, args.instance_ids or None, args.update_domain)
    _skipped(lab, args.name, args.instance_ids, args.update_domain)
    return _report(args, lab, insts)


def cmd_run_command(args) -> int:
    script = "\n".join(args.scripts) + "\n"
    ops.check_script(script, "--scripts")
    out(args, views.run_command_result(ops.run_command(_lab(), args.name, args.instance_id, script)))
    return 0


def cmd_delete(args) -> int:
    removed = ops.delete(_lab(), args.name)
    print(f"deleted scale set {args.name}: {len(removed)} instance(s) with their OS disks, seeds and data disks",
          file=sys.stderr)
    return 0


def cmd_repair(args) -> int:
    lab = _lab()
    ss = lab.models.get(args.name)
    done = ops._run(ops.reconcile(lab, ss))
    out(args, {"repaired": done})
    return 0


def register(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-o", "--output", choices=("json", "table"), default="json")
    named = argparse.ArgumentParser(add_help=False, parents=[common])
    named.add_argument("--name", "-n", required=True, help="scale set name")
    ids = argparse.ArgumentParser(add_help=False)
    ids.add_argument("--instance-ids", nargs="+", metavar="ID", help="instance ids or '*' (default: all)")

    p = sub.add_parser("create", parents=[common], help="create a scale set and wait for its instances")
    p.add_argument("--name", "-n")
    p.add_argument("--image", help="PUBLISHER:OFFER:SKU:VERSION (VERSION may be 'latest')")
    p.add_argument("--instance-count", type=int, default=2)
    p.add_argument("--data-disk-sizes-gb", type=int, nargs="+", metavar="G")
    p.add_argument("--upgrade-policy-mode", choices=("Automatic", "Manual", "Rolling"), default="Manual")
    p.add_argument("--enable-auto-os-upgrade", type=boolean, default=False, metavar="true|false")
    p.add_argument("--custom-data", metavar="FILE")
    p.add_argument("--admin-username", default="azureuser")
    p.add_argument("--computer-name-prefix")
    p.add_argument("--ssh-key-values", nargs="+", metavar="KEY")
    p.add_argument("--location", "-l", default="local")
    p.add_argument("--model", metavar="FILE.json", help="the whole ARM-shaped scale-set document")
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("update", parents=[named], help="change the model (--set PATH=VALUE ...), or an "
                                                       "instance's protection (--instance-id ID --protect-from-...)")
    p.add_argument("--set", action="append", metavar="PATH=VALUE")
    p.add_argument("--instance-id", metavar="ID", help="the instance whose protection changes")
    _protection_flags(p)
    p.set_defaults(func=cmd_update)

    inst = sub.add_parser("instance", help="one instance").add_subparsers(dest="instance_cmd", required=True)
    p = inst.add_parser("update", parents=[named], help="change an instance's protection (protectionPolicy)")
    p.add_argument("--instance-id", required=True, metavar="ID")
    _protection_flags(p)
    p.set_defaults(func=cmd_instance_update)

    ext = sub.add_parser("extension", help="extensions of the model").add_subparsers(dest="ext_cmd", required=True)
    p = ext.add_parser("set", parents=[common], help="add or replace an extension in the model")
    p.add_argument("--vmss-name", required=True)
    p.add_argument("--name", "-n", required=True, help="extension type, e.g. CustomScript")
    p.add_argument("--publisher", required=True)
    p.add_argument("--version", default="2.1")
    p.add_argument("--settings", metavar="JSON|@FILE")
    p.add_argument("--protected-settings", metavar="JSON|@FILE")
    p.add_argument("--provision-after-extensions", nargs="+", metavar="NAME")
    p.add_argument("--extension-instance-name")
    p.set_defaults(func=cmd_extension_set)

    p = sub.add_parser("list", parents=[common], help="every scale set of the lab")
    p.set_defaults(func=cmd_list)

    for cmd, func, helptext in (("show", cmd_show, "the scale set's model"),
                                ("list-instances", cmd_list_instances, "instances and their models"),
                                ("delete", cmd_delete, "delete the scale set with all its disks, data disks too"),
                                ("repair", cmd_repair, "finish or undo what a killed command left")):
        p = sub.add_parser(cmd, parents=[named], help=helptext)
        p.set_defaults(func=func)

    p = sub.add_parser("get-instance-view", parents=[named], help="power, provisioning, running image, extensions")
    p.add_argument("--instance-id", metavar="ID|*")
    p.set_defaults(func=cmd_get_instance_view)

    p = sub.add_parser("health", help="one line per instance: health state and since when")
    p.add_argument("--name", "-n", required=True, help="scale set name")
    p.add_argument("-o", "--output", choices=("json", "table"), default="table")
    p.add_argument("--watch", action="store_true", help="refresh until interrupted")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between polls with --watch")
    p.set_defaults(func=cmd_health)

    p = sub.add_parser("scale", parents=[named], help="change the instance count")
    p.add_argument("--new-capacity", type=int, required=True)
    p.set_defaults(func=cmd_scale)

    for action in ("start", "stop", "restart"):
        p = sub.add_parser(action, parents=[named, ids], help=f"{action} instances")
        p.set_defaults(func=cmd_power, action=action)

    p = sub.add_parser("reimage", parents=[named, ids], help="fresh OS disks from the instances' current image")
    p.set_defaults(func=cmd_reimage)

    p = sub.add_parser("update-instances", parents=[named, ids], help="bring instances to the latest model")
    p.add_argument("--update-domain", type=int, choices=range(5), metavar="UD")
    p.set_defaults(func=cmd_update_instances)

    rc = sub.add_parser("run-command", help="run a script in an instance").add_subparsers(dest="rc_cmd", required=True)
    p = rc.add_parser("invoke", parents=[named], help="run shell as root over SSH")
    p.add_argument("--instance-id", required=True)
    p.add_argument("--command-id", default="RunShellScript", choices=("RunShellScript",))
    p.add_argument("--scripts", nargs="+", required=True)
    p.set_defaults(func=cmd_run_command)
