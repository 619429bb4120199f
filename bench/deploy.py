"""Benchmark: a template deployment against the same resources PUT one by one, and the engine's
evaluation time.

    .venv/bin/python bench/deploy.py [--resources 50] [--runs 3] [--evals 100] [--json]

A lab in a temp dir on test:///default with the fake driver (tests/fakedriver.py), controller +
API served in this process (tests/apiserver.py serve()); the client is Azure's SDK in a process of
its own (so this process's CPU is the controller's). The lab serves no Microsoft.Network yet, so
the template is --resources scale sets of capacity 0 (no VM work: what is measured is the API,
the checks, the records and the engine); with the network issue it becomes "10 scale sets plus
what they reference". Each run, in one lab:
- validate: POST validate of the template (ResourceManagementClient begin_validate);
- deploy: PUT of the template, to its end (begin_create_or_update(...).result());
- one by one: the same scale sets (other names) PUT in turn (ComputeManagementClient
  begin_create_or_update(...).result()).
Each phase's wall time as the client sees it (the SDK's polls wait the Retry-After of 1 s the
lab sends, so it varies; the deployment's own `duration` is given too), the controller's CPU
(this process's CPU over the phase: the stable figure), and the ratios deploy / one by one. The
resources of a phase are deleted before the next (not measured). The disk pool is made first:
parallel first creates race on it (controller/ops/lab.py pool_at).

Engine: prepare() + every resource evaluated + the outputs of the template `az vmss create`
builds (tests/template_samples.py), on an in-memory Environment: median of --evals.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.core.settings import LabPaths  # noqa: E402
from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG  # noqa: E402
from controller.model.armid import SUBSCRIPTION_ID  # noqa: E402
from controller.ops.lab import Lab  # noqa: E402
from controller.template.template import Environment, prepare  # noqa: E402
from controller.virt.accel import Accel  # noqa: E402
from tests.apiserver import serve  # noqa: E402
from tests.fakedriver import FakeDriver  # noqa: E402
from tests.helpers import make_qcow2  # noqa: E402
from tests.template_samples import az_vmss_create  # noqa: E402

P, O, S = "scaleset-lab", "debian", "debian-12"
VMSS = "Microsoft.Compute/virtualMachineScaleSets"


def scale_set(name: str) -> dict:
    """A scale set of capacity 0 as a template resource (its body is what the direct PUT sends)."""
    return {"type": VMSS, "apiVersion": "2024-07-01", "name": name, "location": "local",
            "sku": {"name": "Standard_B1s", "capacity": 0},
            "properties": {"upgradePolicy": {"mode": "Manual"}, "virtualMachineProfile": {
                "storageProfile": {"imageReference": {"publisher": P, "offer": O, "sku": S, "version": "1.0.0"}},
                "osProfile": {"computerNamePrefix": name[:9], "adminUsername": "azureuser"}}}}


def template(names: list[str]) -> dict:
    return {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
            "contentVersion": "1.0.0.0", "resources": [scale_set(n) for n in names]}


# -- the client: Azure's SDK in a process of its own ----------------------------------------------
def client(conn: Any, endpoint: str, token: str, ca: str) -> None:
    """Runs each (phase, names) sent on `conn`; answers (wall seconds, result) or ("error", text)."""
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.resource import ResourceManagementClient

    from tests.apiserver import LabCredential
    cred = LabCredential(token)
    kw = {"base_url": endpoint, "connection_verify": ca, "polling_interval": 0.05}
    compute = ComputeManagementClient(cred, SUBSCRIPTION_ID, **kw)
    deployments = ResourceManagementClient(cred, SUBSCRIPTION_ID, **kw).deployments
    while (msg := conn.recv()) is not None:
        phase, names = msg
        body = {"properties": {"mode": "Incremental", "template": template(names), "parameters": {}}}
        server = None  # the deployment's own duration (ISO 8601)
        try:
            t0 = time.monotonic()
            if phase == "validate":
                out = deployments.begin_validate(RG, "bench", body).result().properties.provisioning_state
            elif phase == "deploy":
                props = deployments.begin_create_or_update(RG, "bench", body).result().properties
                out, server = props.provisioning_state, props.duration
            elif phase == "put":
                for n in names:
                    res = scale_set(n)
                    compute.virtual_machine_scale_sets.begin_create_or_update(
                        RG, n, {k: res[k] for k in ("location", "sku", "properties")}).result()
                out = "Succeeded"
            else:  # delete
                for poller in [compute.virtual_machine_scale_sets.begin_delete(RG, n) for n in names]:
                    poller.result()
                out = "Deleted"
            conn.send((time.monotonic() - t0, out, server))
        except Exception as exc:  # noqa: BLE001 - said to the benchmark, which stops
            conn.send(("error", f"{type(exc).__name__}: {exc}"[:2000], None))


@contextmanager
def served_lab(tmp: Path):
    home = tmp / "lab"
    os.environ["SCALESET_HOME"], os.environ["SCALESET_PORTS_DIR"] = str(home), str(tmp)
    lab = Lab(LabPaths(home).ensure(), "test:///default", Accel("tcg", "benchmark"))
    lab.gallery.import_file(P, O, S, "1.0.0", make_qcow2(tmp / "disk.qcow2", data=b"x" * 4096))
    lab.pool_at(None)  # see the docstring
    try:
        with contextmanager(serve)(lab, FakeDriver(), interval=2.0) as served:
            yield served
    finally:
        lab.close()


def phases(tmp: Path, resources: int, runs: int) -> dict[str, list[dict]]:
    """{phase: [{wallS, cpuMs}] per run} for validate, deploy and put."""
    out: dict[str, list[dict]] = {"validate": [], "deploy": [], "put": []}
    with served_lab(tmp) as served:
        ours, theirs = multiprocessing.Pipe()
        child = multiprocessing.get_context("spawn").Process(
            target=client, args=(theirs, served.endpoint, served.token(), str(served.ca)), daemon=True)
        child.start()
        try:
            def ask(phase: str, names: list[str]) -> dict:
                cpu0 = time.process_time()
                ours.send((phase, names))
                wall, result, server = ours.recv()
                cpu = time.process_time() - cpu0
                if wall == "error" or result not in ("Succeeded", "Deleted"):
                    raise SystemExit(f"{phase}: {result}")
                got = {"wallS": round(wall, 3), "cpuMs": round(1000 * cpu, 1)}
                if server:  # PT1.234S
                    got["serverS"] = float(server.removeprefix("PT").removesuffix("S"))
                return got

            for run in range(runs):
                mine = [f"d{run}x{i}" for i in range(resources)]
                theirs_names = [f"p{run}x{i}" for i in range(resources)]
                out["validate"].append(ask("validate", mine))
                out["deploy"].append(ask("deploy", mine))
                ask("delete", mine)
                out["put"].append(ask("put", theirs_names))
                ask("delete", theirs_names)
        finally:
            ours.send(None)
            child.join(30)
    return out


# -- the engine alone ----------------------------------------------------------------------------
def engine_ms(evals: int) -> tuple[list[float], int]:
    """Milliseconds (each run) of prepare() + every resource evaluated + outputs, for az vmss create's template."""
    def reference(rid: str, api: str | None, full: bool) -> dict:
        doc = {"id": rid, "sku": {"capacity": 2}, "properties": {"provisioningState": "Succeeded"}}
        return doc if full else doc["properties"]

    def providers(ns: str, rtype: str | None) -> dict:
        entry = {"resourceType": "virtualMachineScaleSets", "locations": ["local"], "apiVersions": ["2024-07-01"]}
        return entry if rtype else {"namespace": ns, "resourceTypes": [entry]}

    env = Environment(SUBSCRIPTION_ID, RG, "local", "vmss_deploy", reference=reference, providers=providers)
    tmpl, params = az_vmss_create(), {"adminPassword": {"value": "Bench-Passw0rd!"}}
    times, count = [], 0
    for _ in range(evals):
        t0 = time.perf_counter()
        prepared = prepare(tmpl, params, env)
        for count, pr in enumerate(prepared.resources, 1):
            pr.evaluate(env)
        prepared.outputs(env)
        times.append(1000 * (time.perf_counter() - t0))
    return times, count


def figures(got: dict[str, list[dict]], engine: tuple[list[float], int], args: argparse.Namespace) -> dict:
    times, count = engine
    med = {k: {key: statistics.median(r[key] for r in v) for key in v[0]} for k, v in got.items()}
    return {"resources": args.resources, "runs": args.runs, "phases": got, "median": med,
            "deployOverPut": {"wall": round(med["deploy"]["wallS"] / med["put"]["wallS"], 3),
                              "cpu": round(med["deploy"]["cpuMs"] / med["put"]["cpuMs"], 3)},
            "engine": {"evals": args.evals, "resources": count, "medianMs": round(statistics.median(times), 3),
                       "maxMs": round(max(times), 3)}}


def lines(f: dict) -> list[str]:
    n, m = f["resources"], f["median"]
    out = [f"{n} scale sets of capacity 0, median of {f['runs']} run(s); wall as the SDK sees it, CPU of the "
           "controller's process:"]
    for key, label in (("validate", "validate (template)"), ("deploy", "deploy (template)"),
                       ("put", "PUT one by one (SDK)")):
        out.append(f"  {label:22} wall {m[key]['wallS']:7.2f} s   controller CPU {m[key]['cpuMs']:8.1f} ms "
                   f"({m[key]['cpuMs'] / n:.1f} ms per resource)")
    out.append(f"  the deployment's own duration (first PUT to its end, in the controller): "
               f"{m['deploy']['serverS']:.2f} s")
    r = f["deployOverPut"]
    out.append(f"  deploy / one by one: wall x{r['wall']:.2f}, controller CPU x{r['cpu']:.2f}")
    e = f["engine"]
    out.append(f"engine, az vmss create's template (prepare + {e['resources']} resources + outputs): "
               f"median {e['medianMs']:.2f} ms, max {e['maxMs']:.2f} ms, of {e['evals']}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resources", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--evals", type=int, default=100)
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    args = ap.parse_args()
    if not (1 <= args.resources <= 800 and 1 <= args.runs <= 100 and 1 <= args.evals <= 100_000):
        ap.error("--resources 1..800 (ARM's limit), --runs 1..100, --evals 1..100000")
    tmp = Path(tempfile.mkdtemp(prefix="scaleset-deploy-bench-"))
    try:
        got = phases(tmp, args.resources, args.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    f = figures(got, engine_ms(args.evals), args)
    print(json.dumps(f, indent=2) if args.json else "\n".join(lines(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
