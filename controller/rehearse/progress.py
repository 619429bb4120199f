"""Live progress of a rehearsal's rollouts: each upgrade, batch and instance as it happens."""
from __future__ import annotations

import asyncio

from controller.rehearse.steps import Context
from controller.state.upgrades import UpgradeStore


def _timings(t: dict) -> str:
    return ", ".join(f"{k} {v:.1f} s" for k, v in t.items() if v)


async def watch(ctx: Context) -> None:
    """Print what changed in the scale set's rolling upgrades, every `ctx.poll` seconds."""
    store = UpgradeStore(ctx.lab.db)
    said: dict[tuple, str] = {}
    while True:
        for up in reversed(store.history(ctx.name)):
            key = ("up", up.id)
            if key not in said:
                said[key] = "RollingForward"
                ctx.say(f"  rolling upgrade {up.id} to {up.target['version']} started ({up.started_by})")
            for r in store.instances(up):
                bkey = ("batch", up.id, r["batch"])
                if bkey not in said:
                    said[bkey] = ""
                    ids = [x["instanceId"] for x in store.instances(up) if x["batch"] == r["batch"]]
                    ctx.say(f"  batch {r['batch']}: instances {ids} -> {up.target['version']}")
                ikey = ("inst", up.id, r["instanceId"], r["batch"])
                if r["state"] != "InProgress" and said.get(ikey) != r["state"]:
                    said[ikey] = r["state"]
                    why = f": {r['error'][:160]}" if r["error"] and r["state"] != "Succeeded" else ""
                    ctx.say(f"    instance {r['instanceId']}: {r['state']} ({_timings(r['timings'])}){why}")
            if up.status != "RollingForward" and said[key] != up.status:
                said[key] = up.status
                ctx.say(f"  rolling upgrade {up.id}: {up.status}" + (f" ({up.error_code})" if up.error_code else ""))
        await asyncio.sleep(ctx.poll)
