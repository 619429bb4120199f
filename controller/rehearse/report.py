"""The HTML report of a rehearsal (one self-contained file: inline CSS, no script to run, no
external asset) and the JSON it is made from, side by side in a directory."""
from __future__ import annotations

import json
from datetime import datetime
from html import escape
from pathlib import Path

from controller.core.files import atomic_write
from controller.rehearse.runner import Outcome

PARTS = ("swap", "boot", "extensions", "health", "rollback")
CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 .verdict { padding: .1em .5em; border-radius: 4px; color: #fff; }
.PASSED { background: #2e7d32; } .FAILED { background: #c62828; }
table { border-collapse: collapse; margin: .5em 0 1.5em; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: .25em .5em; text-align: left; vertical-align: top; }
td:nth-child(2), td:last-child { overflow-wrap: anywhere; } .steps td:nth-child(3), .steps td:nth-child(4) { white-space: nowrap; }
.st-passed { color: #2e7d32; } .st-failed, .st-error { color: #c62828; font-weight: bold; } .st-skipped { color: #888; }
.timeline { position: relative; border-left: 1px solid #999; margin: .5em 0 1em 9em; }
.axis { display: flex; justify-content: space-between; font-size: 11px; color: #666; }
.batch-head { margin: .4em 0 .1em -9em; font-weight: bold; }
.lane { position: relative; height: 20px; margin: 2px 0; }
.lane-label { position: absolute; left: -9em; width: 8.5em; font-size: 12px; white-space: nowrap; overflow: hidden; }
.seg { position: absolute; top: 0; bottom: 0; min-width: 2px; color: #fff; font-size: 11px; overflow: hidden;
       white-space: nowrap; padding-left: 2px; box-sizing: border-box; }
.seg-swap { background: #6a4fb3; } .seg-boot { background: #1565c0; } .seg-extensions { background: #00838f; } .seg-health { background: #2e7d32; }
.seg-rollback { background: #c62828; }
.event { position: absolute; top: 0; bottom: 0; border-left: 2px dashed #e65100; }
.event span { position: absolute; top: -1.3em; left: 2px; font-size: 11px; color: #e65100; white-space: nowrap; }
.legend span { display: inline-block; padding: 0 .5em; margin-right: .5em; color: #fff; font-size: 12px; }
pre { background: #f5f5f5; padding: .5em; overflow: auto; max-height: 20em; }
"""


def _epoch(iso: str | None) -> float | None:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() if iso else None
    except ValueError:
        return None


def _pct(x: float, total: float) -> str:
    return f"{max(0.0, min(100.0, 100 * x / total)):.2f}%"


def _timeline(up: dict, events: list[dict]) -> str:
    lab = up["lab"]
    total = max(lab["elapsedSeconds"], 1e-3)
    start = _epoch(up["runningStatus"]["startTime"])
    axis = "".join(f"<span>{f * total:.1f} s</span>" for f in (0, .25, .5, .75, 1))
    marks = ""
    for ev in events:
        if start is not None and 0 <= ev["at"] - start <= total:
            marks += (f'<div class="event" data-event="{escape(ev["kind"])}" style="left:{_pct(ev["at"] - start, total)}">'
                      f'<span>{escape(ev["kind"])}</span></div>')
    lanes = ""
    for batch in sorted({r["batch"] for r in lab["instances"]}):
        rec = next((b for b in lab["batches"] if b["batch"] == batch), None)
        took = f" · {rec['wall']:.1f} s" if rec else " · not finished"
        lanes += f'<div class="batch-head" data-batch="{batch}">Batch {batch}{took}</div>'
        for r in (r for r in lab["instances"] if r["batch"] == batch):
            x, segs = r["startSeconds"] or 0.0, ""
            for part in PARTS:
                w = r["timings"].get(part)
                if w is None:
                    continue
                segs += (f'<span class="seg seg-{part}" data-part="{part}" data-seconds="{w}" '
                         f'style="left:{_pct(x, total)};width:{_pct(w, total)}" title="{part} {w:.1f} s">'
                         f'{part} {w:.1f} s</span>')
                x += w
            lanes += (f'<div class="lane" data-batch="{batch}" data-instance="{r["instanceId"]}" '
                      f'data-state="{escape(r["state"])}"><span class="lane-label">#{r["instanceId"]} '
                      f'{escape(r["state"])}</span>{segs}</div>')
    err = up.get("error") or {}
    rb = up["rollbackInfo"]
    return (f'<section class="upgrade" data-upgrade="{lab["upgradeId"]}">'
            f'<h3>Rolling upgrade {lab["upgradeId"]} → {escape(up["targetImageReference"]["version"])}: '
            f'{escape(up["runningStatus"]["code"])} (started by {escape(up["startedBy"])}, {total:.1f} s)</h3>'
            + (f'<p>Error <code>{escape(err["code"])}</code>: {escape(err.get("message") or "")}</p>' if err else "")
            + f'<p>rolled back {rb["successfullyRolledbackInstanceCount"]}, rollback failed '
              f'{rb["failedRolledbackInstanceCount"]}; controller overhead {lab["overhead"]["overheadSeconds"]} s '
              f'({lab["overhead"]["overheadPercent"]} %)</p>'
            f'<div class="timeline"><div class="axis">{axis}</div>{marks}{lanes or "<p>No batch.</p>"}</div></section>')


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def html_report(o: Outcome) -> str:
    data = o.to_json()
    verdict = "PASSED" if o.passed else "FAILED"
    wall = (o.ended or o.started) - o.started
    steps = _table(["#", "step", "verdict", "seconds", "message"], [
        [str(r["index"] + 1) if r["index"] >= 0 else "", escape(r["title"]),
         f'<span class="st-{r["status"]}">{r["status"]}</span>', f'{r["seconds"]:.1f}',
         escape(r["message"]) + (f"<pre>{escape(r['log'])}</pre>" if r["log"] else "")]
        for r in data["results"]], "steps")
    history = _table(["status", "target", "started by", "start", "end", "succeeded", "failed", "rolled back", "error"], [
        [escape(p["runningStatus"]["code"]), escape(p["targetImageReference"]["version"]), escape(p["startedBy"]),
         escape(p["runningStatus"]["startTime"] or ""), escape(p["runningStatus"]["endTime"] or ""),
         str(p["progress"]["successfulInstanceCount"]), str(p["progress"]["failedInstanceCount"]),
         str(p["rollbackInfo"]["successfullyRolledbackInstanceCount"]), escape((p["error"] or {}).get("code") or "")]
        for p in (h["properties"] for h in data["history"])], "history")
    insts = _table(["instance", "update domain", "running", "provisioning", "health"], [
        [str(i["instanceId"]), str(i["updateDomain"]), escape(str(i["version"])), escape(i["provisioningState"]),
         escape(str(i["health"]))] for i in data["instances"]], "instances")
    timelines = "".join(_timeline(up, data["events"]) for up in data["upgrades"]) or "<p>No rolling upgrade.</p>"
    legend = "".join(f'<span class="seg-{p}">{p}</span>' for p in PARTS)
    blob = json.dumps(data).replace("</", "<\\/")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Rehearsal {escape(o.scenario)}: '
            f'{verdict}</title><style>{CSS}</style></head><body>'
            f'<h1>Rehearsal {escape(o.scenario)} <span class="verdict {verdict}" id="verdict">{verdict}</span></h1>'
            f'<p>{escape(o.file)} · scale set {escape(o.scale_set)} · {wall:.0f} s</p>'
            f'<h2>Steps</h2>{steps}<h2>Rollouts</h2><p class="legend">{legend}</p>{timelines}'
            f'<h2>OS-upgrade history</h2>{history}<h2>Instances at the end</h2>{insts}'
            f'<h2>Clean-up</h2><ul>{"".join(f"<li>{escape(c)}</li>" for c in data["cleanup"])}</ul>'
            f'<script type="application/json" id="rehearsal-data">{blob}</script></body></html>\n')


def write_report(o: Outcome, folder: Path) -> Path:
    """folder/index.html and folder/rehearsal.json; returns the HTML's path."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "rehearsal.json", json.dumps(o.to_json(), indent=2) + "\n", 0o644)
    return atomic_write(folder / "index.html", html_report(o), 0o644)
