"""Live progress of a rehearsal's rollouts: each upgrade, batch and instance as it happens."""
from __future__ import annotations

import asyncio

from controller.rehearse.steps import Context
from controller.state.upgrades import UpgradeStore


def _timings(t: dict) -> str:
    return ", ".join(f"{k} {v:.1f} s" for k, v in t.items() if v)


class Progress:
    """Says what changed in the scale set's rolling upgrades since it last looked."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = UpgradeStore(ctx.lab.db)
        self.said: dict[tuple, str] = {}

    def look(self) -> None:
        ctx, store, said = self.ctx, self.store, self.said
        for up in reversed(store.history(ctx.name)):
            key = ("up", up.id)
            if key not in said:
                said[key] = "RollingForward"
                ctx.say(f"  rolling upgrade {up.id} to {up.target['version']} started ({up.started_by})")
            rows = store.instances(up)
            for r in rows:
                bkey = ("batch", up.id, r["batch"])
                if bkey not in said:
                    said[bkey] = ""
                    ids = [x["instanceId"] for x in rows if x["batch"] == r["batch"]]
                    ctx.say(f"  batch {r['batch']}: instances {ids} -> {up.target['version']}")
                ikey = ("inst", up.id, r["instanceId"], r["batch"])
                if r["state"] != "InProgress" and said.get(ikey) != r["state"]:
                    said[ikey] = r["state"]
                    why = f": {r['error'][:160]}" if r["error"] and r["state"] != "Succeeded" else ""
                    ctx.say(f"    instance {r['instanceId']}: {r['state']} ({_timings(r['timings'])}){why}")
            if up.status != "RollingForward" and said[key] != up.status:
                said[key] = up.status
                ctx.say(f"  rolling upgrade {up.id}: {up.status}" + (f" ({up.error_code})" if up.error_code else ""))

    async def watch(self) -> None:
        """look() every `poll` seconds, until cancelled."""
        while True:
            self.look()
            await asyncio.sleep(self.ctx.poll)
