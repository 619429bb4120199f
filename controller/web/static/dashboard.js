// scaleset-lab web view: renders the server's JSON snapshots; live through server-sent events.
"use strict";
(() => {
  const body = document.body, page = body.dataset.page, name = body.dataset.name;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const app = document.getElementById("app"), live = document.getElementById("live");
  const notice = document.getElementById("notice");
  const HEALTH = {Healthy: ["ok", "Healthy", "OK"], Initializing: ["init", "Initializing", "INIT"],
                  Unhealthy: ["bad", "Unhealthy", "BAD"], Unknown: ["unk", "Unknown", "UNK"]};
  const LANES = 12;  // instances of a batch drawn one lane each; a larger batch is drawn by its slowest
  const sum = (row) => Object.values(row.timings).reduce((a, b) => a + b, 0) + (row.state === "InProgress" ? 1e9 : 0);
  const COMPACT = 150;  // instances: above this, smaller cells with short words (and the same meaning)
  const UPGRADE = {InProgress: ["upgrading", "upgrading"], Succeeded: ["upgraded", "upgraded"],
                   Failed: ["failed", "failed"], RolledBack: ["rolledback", "rolled back"],
                   RollbackFailed: ["failed", "rollback failed"]};
  const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
                                                                  '"': "&quot;", "'": "&#39;"}[c]));
  const secs = (v) => (v == null ? "" : `${Number(v).toFixed(1)} s`);
  const pct = (n, of) => (of ? Math.round((100 * n) / of) : 0);
  window.scalesetLab = {renders: 0, lastRenderMs: null, renderMs: [], data: null};  // read by tests, benchmarks

  // -- actions ---------------------------------------------------------------------------------
  function say(text, level) {
    notice.textContent = text;
    notice.className = `notice ${level || "error"}`;
    notice.hidden = !text;
  }
  function confirmThen(text) {
    const dlg = document.getElementById("confirm");
    document.getElementById("confirm-text").textContent = text;
    return new Promise((resolve) => {
      dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), {once: true});
      dlg.showModal();
    });
  }
  async function act(button) {
    const {url, confirm: question, payload} = button.dataset;
    if (!(await confirmThen(question))) return;
    button.disabled = true;
    try {
      const resp = await fetch(url, {method: "POST", credentials: "same-origin", body: payload || "{}",
                                     headers: {"Content-Type": "application/json", "X-Scaleset-CSRF": csrf}});
      const answer = await resp.json().catch(() => ({}));
      if (!resp.ok) {
        const e = answer.error || {};
        say(`${e.code ? `(${e.code}) ` : ""}${e.message || `HTTP ${resp.status}`}`);
      } else {
        say(`${button.textContent}: accepted`, "info");
      }
    } catch (err) {
      say(`the lab did not answer: ${err}`);
    } finally {
      button.disabled = false;
    }
  }
  app.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-url]");
    if (b) act(b);
  });
  const button = (label, url, question, payload, extra) =>
    `<button type="button" data-url="${esc(url)}" data-confirm="${esc(question)}"` +
    `${payload ? ` data-payload="${esc(payload)}"` : ""} class="${esc(extra || "")}">${esc(label)}</button>`;

  // -- the lab page ----------------------------------------------------------------------------
  function renderLab(d) {
    const sets = d.scaleSets.map((s) => {
      const u = s.latestUpgrade;
      const upgrade = u ? `<span class="status s-${esc(u.status)}">${esc(u.status)}</span> → ${esc(u.targetVersion)}` +
        `${u.errorCode ? ` <code>${esc(u.errorCode)}</code>` : ""}` : "none yet";
      return `<tr><td><a href="/lab/scalesets/${encodeURIComponent(s.name)}">${esc(s.name)}</a></td>` +
        `<td>${esc(s.capacity)}</td><td><code>${esc(s.image)}</code><br><small>running ${esc(s.runningVersions.join(", ") || "–")}` +
        `</small></td><td>${esc(s.mode)}</td><td>${s.automaticOSUpgrade ? "on" : "off"}</td><td>${upgrade}</td></tr>`;
    }).join("");
    const images = d.images.map((i) => {
      const url = `/lab/api/images/${[i.publisher, i.offer, i.sku, i.version].map(encodeURIComponent).join("/")}/excludeFromLatest`;
      const to = !i.excludeFromLatest;
      return `<tr><td><code>${esc(`${i.publisher}:${i.offer}:${i.sku}`)}</code></td><td>${esc(i.version)}</td>` +
        `<td>${i.excludeFromLatest ? "excluded" : "eligible"}</td><td>${esc(i.targetRegions.join(", "))}</td>` +
        `<td>${button(to ? "Exclude from latest" : "Include in latest", url,
                       `${to ? "Exclude" : "Include"} ${i.publisher}:${i.offer}:${i.sku}:${i.version} ${to ? "from" : "in"} latest?`,
                       JSON.stringify({excludeFromLatest: to}))}</td></tr>`;
    }).join("");
    const damaged = d.damaged.map((t) => `<li>${esc(t)}</li>`).join("");
    app.innerHTML =
      `<section><h1>Scale sets</h1><div class="scroll"><table id="scale-sets"><thead><tr><th>Name</th><th>Capacity</th>` +
      `<th>Image</th><th>Mode</th><th>Automatic OS upgrade</th><th>Latest rolling upgrade</th></tr></thead>` +
      `<tbody>${sets || '<tr><td colspan="6">No scale set yet: <code>scaleset create</code></td></tr>'}</tbody></table></div>` +
      `${damaged ? `<ul class="warn">${damaged}</ul>` : ""}</section>` +
      `<section><h2>Image versions</h2><div class="scroll"><table id="images"><thead><tr><th>Image</th><th>Version</th>` +
      `<th>Latest</th><th>Regions</th><th></th></tr></thead><tbody>${images}</tbody></table></div></section>`;
  }

  // -- the scale-set page: heat map ------------------------------------------------------------
  const cells = new Map();
  let shell = false;
  function cellText(c, compact) {
    const h = HEALTH[c.health] || ["none", "no health yet", "–"];
    const u = UPGRADE[c.upgrade] && c.upgrade !== "Succeeded" ? UPGRADE[c.upgrade] : null;
    const busy = !u && ["Creating", "Updating", "Deleting"].includes(c.provisioning);
    const flags = [c.power !== "running" ? c.power : "", u ? u[1] : "", busy ? c.provisioning.toLowerCase() : "",
                   c.latestModelApplied ? "" : "old model", c.provisioning === "Failed" ? "failed" : "",
                   c.protected ? "protected" : ""].filter(Boolean);
    return {cls: `cell h-${h[0]} ${u ? `u-${u[0]}` : busy ? "u-upgrading" : ""} ${c.power !== "running" ? "off" : ""} ` +
                 `${c.latestModelApplied ? "" : "stale"} ${c.provisioning === "Failed" ? "prov-failed" : ""}`,
            html: `<b>${esc(c.id)}</b><span class="v">${esc(c.version)}</span><span class="h">${esc(h[compact ? 2 : 1])}</span>` +
                  `${flags.length ? `<span class="f">${esc(flags.join(" · "))}</span>` : ""}`,
            label: `instance ${c.id}, update domain ${c.ud}, image ${c.version}` +
                   `${c.running && c.running !== c.version ? ` (running ${c.running})` : ""}, ${c.power}, ` +
                   `health ${c.health || "unknown"}${u ? `, ${u[1]}` : ""}, ` +
                   `latest model ${c.latestModelApplied ? "applied" : "not applied"}` +
                   `${c.protected ? `, protected from ${c.protected}` : ""}`};
  }
  function renderShell(d) {
    const rows = [];
    for (let ud = 0; ud < d.updateDomains; ud++) {
      rows.push(`<div class="ud" data-ud="${ud}"><div class="ud-head"><span>UD ${ud}</span>` +
        `<small class="ud-sum" id="ud-sum-${ud}"></small>` +
        `${button(`Upgrade UD ${ud}`, `/lab/api/scalesets/${encodeURIComponent(d.name)}/updateDomains/${ud}/upgrade`,
                  `Bring every instance of update domain ${ud} of ${d.name} to the latest model (manual upgrade)?`,
                  null, "small")}</div><div class="ud-cells" id="ud-${ud}"></div></div>`);
    }
    const base = `/lab/api/scalesets/${encodeURIComponent(d.name)}`;
    app.innerHTML =
      `<section><h1 id="title"></h1><p id="summary"></p><div class="toolbar">` +
      `${button("Start rolling upgrade", `${base}/rollingUpgrade/start`, `Start a rolling OS upgrade of ${d.name}?`, null, "primary")}` +
      `${button("Cancel rolling upgrade", `${base}/rollingUpgrade/cancel`, `Cancel the rolling upgrade of ${d.name}?`)}` +
      `</div></section>` +
      `<div class="cols"><section class="map"><h2>Update domains</h2><div id="heatmap">${rows.join("")}</div>` +
      `<ul class="legend"><li class="cell h-ok">Healthy</li><li class="cell h-init">Initializing</li>` +
      `<li class="cell h-bad">Unhealthy</li><li class="cell h-unk">Unknown</li><li class="cell h-ok u-upgrading">upgrading</li>` +
      `<li class="cell h-ok u-rolledback">rolled back</li><li class="cell h-bad u-failed">failed</li>` +
      `<li class="cell h-ok stale">old model</li><li class="cell h-unk off">not running</li></ul></section>` +
      `<aside id="details" aria-live="polite"><h2>Instance</h2><p>Hover or focus an instance.</p></aside></div>` +
      `<section id="rollout"></section><section id="operations"></section><section id="history"></section>`;
    shell = true;
  }
  function udSummary(d) {
    const per = Array.from({length: d.updateDomains}, () => ({n: 0, v: {}, h: {}, up: 0}));
    for (const c of d.cells) {
      const s = per[c.ud % d.updateDomains];
      s.n += 1;
      s.v[c.version] = (s.v[c.version] || 0) + 1;
      const h = c.health || "no health";
      s.h[h] = (s.h[h] || 0) + 1;
      if (c.upgrade === "InProgress") s.up += 1;
    }
    const list = (o) => Object.entries(o).sort().map(([k, n]) => `${k} ×${n}`).join(", ");
    per.forEach((s, ud) => {
      document.getElementById(`ud-sum-${ud}`).textContent =
        s.n ? `${s.n} · ${list(s.v)} · ${list(s.h)}${s.up ? ` · ${s.up} upgrading` : ""}` : "empty";
    });
  }
  function renderCells(d) {
    const seen = new Set(), compact = d.cells.length > COMPACT;
    document.getElementById("heatmap").classList.toggle("compact", compact);
    udSummary(d);
    for (const c of d.cells) {
      seen.add(c.id);
      let el = cells.get(c.id);
      const t = cellText(c, compact);
      const sig = t.cls + t.html;
      if (!el) {
        el = document.createElement("div");
        el.tabIndex = 0;
        el.dataset.id = c.id;
        el.setAttribute("role", "button");
        cells.set(c.id, el);
      }
      if (el.dataset.ud !== String(c.ud)) {
        el.dataset.ud = c.ud;
        document.getElementById(`ud-${c.ud % d.updateDomains}`).appendChild(el);
      }
      if (el._sig !== sig) {
        if (el._sig && shown === c.id) setTimeout(() => showInstance(c.id, true), 0);  // its view changed too
        el._sig = sig;
        el.className = t.cls;
        el.innerHTML = t.html;
        el.setAttribute("aria-label", t.label);
        el.title = t.label;
      }
    }
    for (const [id, el] of cells) if (!seen.has(id)) { el.remove(); cells.delete(id); }
  }

  // -- instance view on hover / focus ----------------------------------------------------------
  let shown = null, timer = null;
  async function showInstance(id, again) {
    if (shown === id && !again) return;
    shown = id;
    const aside = document.getElementById("details");
    const resp = await fetch(`/lab/api/scalesets/${encodeURIComponent(name)}/instances/${id}`, {credentials: "same-origin"});
    const v = await resp.json();
    if (shown !== id) return;
    if (!resp.ok) { aside.innerHTML = `<h2>Instance ${esc(id)}</h2><p>${esc(v.error?.message)}</p>`; return; }
    const st = v.statuses.map((s) => esc(s.displayStatus)).join(", ");
    const exts = v.extensions.map((e) => `<li>${esc(e.name)}: ${esc((e.statuses || []).map((s) => s.displayStatus).join(", "))}</li>`).join("");
    const h = v.vmHealth ? `${v.vmHealth.status.displayStatus} (${v.vmHealth.lab.source}) ${v.vmHealth.status.message || ""}` : "not read yet";
    const ref = v.imageReference;
    aside.innerHTML = `<h2>Instance ${esc(v.instanceId)}</h2><dl>` +
      `<dt>Computer name</dt><dd>${esc(v.computerName)}</dd><dt>Update / fault domain</dt><dd>${esc(v.platformUpdateDomain)} / ${esc(v.platformFaultDomain)}</dd>` +
      `<dt>Image</dt><dd><code>${esc(`${ref.publisher}:${ref.offer}:${ref.sku}:${ref.version}`)}</code></dd>` +
      `<dt>Running image</dt><dd>${esc(v.runningImage?.version || "–")}</dd><dt>Statuses</dt><dd>${st}</dd>` +
      `<dt>Health</dt><dd>${esc(h)}</dd><dt>Latest model applied</dt><dd>${v.latestModelApplied ? "yes" : "no"}</dd>` +
      `<dt>Boot id</dt><dd><code>${esc(v.bootId || "–")}</code></dd><dt>Extensions</dt><dd><ul>${exts || "<li>none</li>"}</ul></dd></dl>` +
      button("Reimage", `/lab/api/scalesets/${encodeURIComponent(name)}/instances/${v.instanceId}/reimage`,
             `Reimage instance ${v.instanceId} of ${name} (a fresh OS disk from its current image; data disks kept)?`);
  }
  const hover = (ev) => {
    const el = ev.target.closest?.(".ud-cells .cell");
    if (!el) return;
    clearTimeout(timer);
    timer = setTimeout(() => showInstance(Number(el.dataset.id)), ev.type === "focusin" ? 0 : 120);
  };
  app.addEventListener("mouseover", hover);
  app.addEventListener("focusin", hover);

  // -- the rollout: timeline, thresholds, history ----------------------------------------------
  function renderRollout(r) {
    if (!r) return `<h2>Rolling upgrade</h2><p>No rolling upgrade yet.</p>`;
    const rs = r.runningStatus, total = Math.max(r.lab.elapsedSeconds, 1e-3), p = r.progress;
    const at = (s) => `${Math.min(100, (100 * s) / total).toFixed(2)}%`;
    const byBatch = new Map();
    for (const row of r.lab.instances) {
      if (!byBatch.has(row.batch)) byBatch.set(row.batch, []);
      byBatch.get(row.batch).push(row);
    }
    const lane = (row, label, title) => {
      let x = row.startSeconds || 0, segs = "";
      for (const part of ["swap", "boot", "extensions", "health", "rollback"]) {
        const w = row.timings[part];
        if (w == null) continue;
        segs += `<span class="seg seg-${part}" style="--x:${at(x)};--w:${at(w)}" title="${part} ${secs(w)}">${part} ${secs(w)}</span>`;
        x += w;
      }
      if (row.state === "InProgress") {
        segs += `<span class="seg seg-running" style="--x:${at(x)};--w:${at(Math.max(0, total - x))}">in progress</span>`;
      }
      const u = UPGRADE[row.state] || [row.state, row.state];
      return `<div class="lane" data-instance="${esc(row.instanceId ?? "")}" title="${esc(title || "")}"><span class="lane-label">` +
        `${esc(label)} <span class="state st-${esc(u[0])}">${esc(u[1])}</span></span><span class="track">${segs}</span></div>`;
    };
    const lanes = [...byBatch.entries()].map(([batch, rows]) => {
      const rec = r.lab.batches.find((b) => b.batch === batch);
      const head = `<div class="batch-head">Batch ${esc(batch)}${rec ? ` · ${secs(rec.wall)}` : " · in progress"}` +
        `${rows.length > LANES ? ` · ${rows.length} instances` : ""}${rec && rec.mode === "MaxSurge" ? " · MaxSurge" : ""}` +
        `${rec && rec.fallback ? ` · in place (${esc(rec.fallback)})` : ""}</div>`;
      const name = (row) => `#${row.instanceId}${row.replacedBy != null ? ` → #${row.replacedBy}` : ""}`;  // MaxSurge
      if (rows.length <= LANES) return head + rows.map((row) => lane(row, name(row))).join("");
      // a large batch: its slowest instance stands for it, and every instance that did not succeed has its own lane
      const slowest = rows.reduce((a, b) => (sum(b) > sum(a) ? b : a));
      const others = rows.filter((row) => row !== slowest && row.state !== "Succeeded" && row.state !== "InProgress");
      const counts = Object.entries(rows.reduce((o, row) => ({...o, [row.state]: (o[row.state] || 0) + 1}), {}))
        .map(([k, n]) => `${n} ${(UPGRADE[k] || [k, k])[1]}`).join(", ");
      return head + lane(slowest, `slowest ${name(slowest)}`, counts) +
        `<div class="batch-counts">${esc(counts)}</div>` + others.slice(0, LANES).map((row) => lane(row, name(row))).join("");
    }).join("");
    const gates = (r.thresholds || []).map((t) => {
      const v = pct(t.count, t.of);
      return `<div class="gate ${t.exceeded ? "exceeded" : ""}" data-gate="${esc(t.name)}"><span class="gate-label">${esc(t.label)}: ` +
        `${esc(t.count)} of ${esc(t.of)} (${v} %) · limit ${esc(t.limit)} % <code>${esc(t.policy)}</code>` +
        `${t.exceeded ? " · EXCEEDED" : ""}</span><span class="meter"><span class="fill" style="--w:${Math.min(v, 100)}%"></span>` +
        `<span class="limit" style="--x:${Math.min(t.limit, 100)}%"></span></span></div>`;
    }).join("");
    const err = r.error ? `<p class="error-code">Error <code>${esc(r.error.code)}</code>: ${esc(r.error.message)}</p>` : "";
    const rb = r.rollbackInfo;
    return `<h2>Rolling upgrade ${esc(r.lab.upgradeId)} → ${esc(r.targetImageReference.version)}</h2>` +
      `<p class="run"><span class="status s-${esc(rs.code)}" id="run-status">${esc(rs.code)}</span> started by ${esc(r.startedBy)} ` +
      `${esc(rs.startTime)}${rs.endTime ? ` · ended ${esc(rs.endTime)}` : ""} · ${secs(r.lab.elapsedSeconds)}</p>${err}` +
      `<p id="progress">${esc(p.successfulInstanceCount)} succeeded · ${esc(p.failedInstanceCount)} failed · ` +
      `${esc(p.inProgressInstanceCount)} in progress · ${esc(p.pendingInstanceCount)} pending · ` +
      `${esc(rb.successfullyRolledbackInstanceCount)} rolled back${rb.failedRolledbackInstanceCount ? ` · ${esc(rb.failedRolledbackInstanceCount)} rollback failed` : ""}</p>` +
      `<div class="gates">${gates}</div><div class="timeline" id="timeline"><div class="axis" aria-hidden="true">` +
      `${[0, 0.25, 0.5, 0.75, 1].map((f) => `<span>${(f * total).toFixed(1)} s</span>`).join("")}</div>` +
      `${lanes || "<p>No batch yet.</p>"}</div>` +
      `<ul class="legend"><li class="seg-swap">swap</li><li class="seg-boot">boot</li><li class="seg-extensions">extensions (in place)</li><li class="seg-health">health</li>` +
      `<li class="seg-rollback">rollback</li><li class="seg-running">in progress</li></ul>`;
  }
  function renderHistory(items) {
    const rows = items.map((h) => {
      const p = h.properties, rs = p.runningStatus;
      return `<tr><td><span class="status s-${esc(rs.code)}">${esc(rs.code)}</span></td><td>${esc(p.targetImageReference.version)}</td>` +
        `<td>${esc(p.startedBy)}</td><td>${esc(rs.startTime)}</td><td>${esc(rs.endTime || "")}</td>` +
        `<td>${esc(p.progress.successfulInstanceCount)} / ${esc(p.progress.failedInstanceCount)}</td>` +
        `<td>${esc(p.rollbackInfo.successfullyRolledbackInstanceCount)}</td><td>${p.error ? `<code>${esc(p.error.code)}</code>` : ""}</td></tr>`;
    }).join("");
    return `<h2>OS upgrade history (last 5)</h2><div class="scroll"><table id="history-table"><thead><tr><th>Status</th><th>Version</th>` +
      `<th>Started by</th><th>Start</th><th>End</th><th>Succeeded / failed</th><th>Rolled back</th><th>Error</th></tr></thead>` +
      `<tbody>${rows || '<tr><td colspan="8">No upgrade yet.</td></tr>'}</tbody></table></div>`;
  }
  function renderSet(d) {
    if (d.error) { app.innerHTML = `<p class="notice error">(${esc(d.error.code)}) ${esc(d.error.message)}</p>`; shell = false; return; }
    if (!shell) renderShell(d);
    document.getElementById("title").textContent = d.name;
    document.getElementById("summary").textContent =
      `${d.cells.length} of ${d.capacity} instances · model image ${d.image} · mode ${d.mode} · automatic OS upgrade ` +
      `${d.automaticOSUpgrade ? "on" : "off"}`;
    renderCells(d);
    put("rollout", renderRollout(d.rollout));
    put("operations", d.operations.length ? `<h2>Actions</h2><ul>${d.operations.map((o) =>
      `<li>${esc(o.kind)}: <span class="status s-${esc(o.status)}">${esc(o.status)}</span>` +
      `${o.error ? ` (${esc(o.error.code)}) ${esc(o.error.message)}` : ""}</li>`).join("")}</ul>` : "");
    put("history", renderHistory(d.history));
  }
  function put(id, html) {  // a section is laid out again only when its HTML changed
    const el = document.getElementById(id);
    if (el._html !== html) { el._html = html; el.innerHTML = html; }
  }

  // -- render, and follow the server ----------------------------------------------------------
  function render(d) {
    const t0 = performance.now();
    if (page === "set") renderSet(d); else renderLab(d);
    void app.offsetHeight;  // the layout is part of the render's time
    const s = window.scalesetLab;
    s.lastRenderMs = performance.now() - t0;
    s.renderMs.push(s.lastRenderMs);
    if (s.renderMs.length > 1000) s.renderMs.shift();
    s.renders += 1;
    s.data = d;
    body.dataset.renders = s.renders;
  }
  render(JSON.parse(document.getElementById("initial").textContent));
  const source = new EventSource(`/lab/events${page === "set" ? `?scaleSet=${encodeURIComponent(name)}` : ""}`);
  source.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
  source.onmessage = (ev) => render(JSON.parse(ev.data));
})();
