"""`python -m tests.killctl ARGS...`: `scaleset ARGS...` (the CLI, as its own process) on libvirt's
test driver whose domains and volumes outlive the process (tests/persistvirt.py, state file
$SCALESET_TEST_VIRT_STATE), with the fake pool's uploads (tests/fakepool.py) and a boot wait that
answers at once. While the file $SCALESET_TEST_HOLD (or, for one set's guests, that path plus
`-<set>`) exists, the steps named in $SCALESET_TEST_HOLD_AT wait (where a kill -9 finds an
operation InProgress): `boot` (a guest still booting) and `purge` (a delete that removed one
domain of its set)."""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

from tests import fakepool, persistvirt


def hold(step: str, scale_set: str = "") -> None:
    """Wait while the hold file exists (or, for a step of one scale set, `<hold file>-<set>`)."""
    from controller.core import signals
    path = os.environ.get("SCALESET_TEST_HOLD", "")
    if step not in os.environ.get("SCALESET_TEST_HOLD_AT", "boot").split(",") or not path:
        return
    while Path(path).exists() or (scale_set and Path(f"{path}-{scale_set}").exists()):
        signals.sleep(0.02)


def booted(lab, inst, started, timeout=0.0):
    from controller.virt import vm
    from controller.virt.readiness import Readiness
    hold("boot", inst.scale_set)
    exts = vm.typed_profile(inst).extensionProfile.extensions
    return vm.Booted(Readiness("done", str(uuid.uuid4()), {"version": inst.image["version"]}, {}),
                     [{"name": e.name, "provisioningState": "Succeeded"} for e in exts])


def install() -> None:
    fakepool.install()
    persistvirt.install(os.environ["SCALESET_TEST_VIRT_STATE"])
    from controller.ops import commands, provision
    provision.wait_booted = booted
    commands.wait_booted = booted
    purge = commands.purge_domain

    def purge_then_hold(*a, **kw):
        purge(*a, **kw)
        hold("purge")
    commands.purge_domain = purge_then_hold


if __name__ == "__main__":
    install()
    from controller.cli.main import main
    sys.argv = ["scaleset", *sys.argv[1:]]
    sys.exit(main())
