// Cairn UI: vanilla JS, no build step. Pages: #/ (runs) and #/runs/NAME (a run).
// Data comes from /api; changes arrive as server-sent events from /api/events (the server watches).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const state = { info: null, route: null, run: null, lineage: null, selected: new Set(), step: null, following: null, runs: null, checked: new Set(), filters: { job: "", phase: "", root: "" } };

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "html") el.innerHTML = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c.nodeType ? c : String(c));
  return el;
}

function showError(msg) { const e = $("#error"); e.textContent = msg; e.hidden = !msg; }

async function api(path, opts = {}) {
  const resp = await fetch(path, opts);
  let body = null;
  try { body = await resp.json(); } catch (_) { body = null; }
  if (!resp.ok) {
    const err = new Error((body && body.error) || `${resp.status} ${resp.statusText}`);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)cairn_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json", "X-Cairn-CSRF": csrfToken() }, body: JSON.stringify(body) });
}

// Kubernetes timestamps have whole seconds: a shorter time there is "< 1 s", not "0 ms".
const coarse = () => state.info && state.info.kind === "kubernetes";
const fmtDur = (s) => (s === null || s === undefined ? "" : s < 1 ? (coarse() ? "< 1 s" : `${Math.round(s * 1000)} ms`) : s < 120 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`);
const fmtTime = (t) => (t ? new Date(t * 1000).toLocaleString() : "");
const badge = (phase) => h("span", { class: `badge ${phase}` }, phase);
const runLink = (name) => (name ? h("a", { href: `#/runs/${encodeURIComponent(name)}` }, name) : "");

// ----- live updates ----------------------------------------------------------------------------
let refreshTimer = null;
function connectEvents() {
  const es = new EventSource("/api/events");
  es.onopen = () => $("#live").classList.add("on");
  es.onerror = () => $("#live").classList.remove("on");
  es.onmessage = (m) => {
    let batch = [];
    try { batch = JSON.parse(m.data); } catch (_) { return; }
    if (state.following && batch.some((e) => e.kind === "reexecutions" || e.kind === "all")) followReexecution();
    if (!refreshTimer) refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, 250);
  };
}

async function refresh() {
  try {
    if (state.route.page === "runs") await loadRuns();
    else if (state.route.page === "run") await loadRun(false);
  } catch (e) { showError(e.message); }
}

// ----- routing ---------------------------------------------------------------------------------
function parseRoute() {
  const m = location.hash.match(/^#\/runs\/([^?]+)/);
  return m ? { page: "run", name: decodeURIComponent(m[1]) } : { page: "runs" };
}

async function route() {
  showError("");
  state.route = parseRoute();
  if (state.route.page !== "run" || !state.run || state.run.name !== state.route.name) closeLogStream();
  if (state.route.page === "run" && (!state.run || state.run.name !== state.route.name)) {
    state.selected = new Set(); state.step = null; state.run = null;
  }
  try {
    if (state.route.page === "runs") await loadRuns(true);
    else await loadRun(true);
  } catch (e) { showError(e.message); }
}

// ----- runs list -------------------------------------------------------------------------------
async function loadRuns(first) {
  const data = await api("/api/runs");
  state.runs = data.items;
  if (first || !$("#runs-table")) renderRunsPage();
  renderRunsTable();
}

function renderRunsPage() {
  const jobs = [...new Set(state.runs.map((r) => r.job).filter(Boolean))].sort();
  const f = state.filters;
  const sel = (id, opts, value) => h("select", { id, onchange: (e) => { f[id.slice(2)] = e.target.value; renderRunsTable(); } },
    h("option", { value: "" }, "all"), opts.map((o) => h("option", { value: o, selected: o === value }, o)));
  $("#main").replaceChildren(
    h("h1", {}, "Runs"),
    h("div", { class: "filters" },
      h("label", {}, "Job ", sel("f-job", jobs, f.job)),
      h("label", {}, "Phase ", sel("f-phase", ["Pending", "Running", "Succeeded", "Failed", "Canceled"], f.phase)),
      h("label", {}, "Root run ", h("input", { type: "text", id: "f-root", value: f.root, placeholder: "name", oninput: (e) => { f.root = e.target.value.trim(); renderRunsTable(); } })),
      h("button", { id: "bulk", class: "secondary", onclick: bulkFromFailure }, "Re-execute from failure (0)")),
    h("div", { id: "bulk-result" }),
    h("table", { id: "runs-table" }));
}

function renderRunsTable() {
  const f = state.filters;
  const rows = state.runs.filter((r) => (!f.job || r.job === f.job) && (!f.phase || r.phase === f.phase) && (!f.root || r.root === f.root || r.name === f.root));
  const failed = (r) => r.phase === "Failed" || r.phase === "Canceled";
  const table = $("#runs-table");
  table.replaceChildren(
    h("tr", {}, ["", "Run", "Job", "Phase", "Progress", "Duration", "Parent", "Root", "Mode"].map((c) => h("th", {}, c))),
    ...rows.map((r) => h("tr", { "data-run": r.name },
      h("td", {}, failed(r) ? h("input", { type: "checkbox", checked: state.checked.has(r.name), title: "select for bulk re-execution from failure",
        onchange: (e) => { e.target.checked ? state.checked.add(r.name) : state.checked.delete(r.name); updateBulk(); } }) : ""),
      h("td", {}, runLink(r.name)), h("td", {}, r.job || ""), h("td", {}, badge(r.phase)), h("td", {}, r.progress),
      h("td", {}, fmtDur(r.duration)), h("td", {}, runLink(r.parent)), h("td", {}, r.root !== r.name ? runLink(r.root) : h("span", { class: "muted" }, "itself")),
      h("td", {}, r.mode || ""))));
  if (!rows.length) table.append(h("tr", {}, h("td", { colspan: 9, class: "muted" }, state.runs.length ? "No run matches the filters." : "No runs yet.")));
  updateBulk();
}

function updateBulk() {
  for (const n of [...state.checked]) if (!state.runs.some((r) => r.name === n)) state.checked.delete(n);
  const b = $("#bulk");
  if (b) { b.textContent = `Re-execute from failure (${state.checked.size})`; b.disabled = state.checked.size === 0; }
}

async function bulkFromFailure() {
  const names = [...state.checked];
  try {
    const res = await post("/api/bulk/from-failure", { runs: names });
    state.checked.clear();
    $("#bulk-result").replaceChildren(h("div", { class: "note" }, h("b", {}, "Bulk re-execution from failure"),
      h("ul", {}, Object.entries(res.results).map(([n, r]) => h("li", {}, runLink(n), " → ",
        r.ok ? (r.childRun ? runLink(r.childRun) : `Reexecution ${r.reexecution}`) : h("span", { class: "bad" }, `refused (${r.status}): ${r.error}`))))));
    await loadRuns();
  } catch (e) { showError(e.message); }
}

// ----- a run -----------------------------------------------------------------------------------
async function loadRun(first) {
  const name = state.route.name;
  const [run, lineage] = await Promise.all([api(`/api/runs/${encodeURIComponent(name)}`), api(`/api/runs/${encodeURIComponent(name)}/lineage`)]);
  if (state.route.page !== "run" || state.route.name !== name) return;
  state.run = run; state.lineage = lineage;
  if (first || !$("#rx-form")) renderRunPage();
  renderRunParts();
}

function renderRunPage() {
  const run = state.run;
  const modes = [["All", "All steps"], ["SameSteps", "Same steps"], ["Selected", "Selected"], ["FromSelected", "From selected"], ["FromFailure", "From failure"]];
  $("#main").replaceChildren(
    h("div", { id: "run-head" }),
    h("div", { class: "grid" },
      h("div", {},
        h("div", { class: "card" }, h("h2", {}, "Graph ", h("span", { class: "muted" }, "(click steps to select)")), h("div", { id: "graph", class: "scroll" })),
        h("div", { class: "card" }, h("h2", {}, "Timeline"), h("div", { id: "gantt", class: "scroll" })),
        h("div", { class: "card" }, h("h2", {}, "Steps"), h("div", { id: "steps" })),
        h("div", { class: "card", id: "step-card", hidden: true }, h("div", { id: "step-detail" }))),
      h("div", {},
        h("div", { class: "card", id: "rx-form" },
          h("h2", {}, "Re-execute"),
          h("div", { class: "toolbar" },
            h("label", {}, "Mode ", h("select", { id: "mode", onchange: syncMode }, modes.map(([v, t]) => h("option", { value: v }, t)))),
            h("label", {}, "Selection ", h("input", { type: "text", id: "selection", size: 22, placeholder: "op, op*, +op", oninput: onSelectionTyped }))),
          h("details", {}, h("summary", {}, "Overrides"),
            h("label", {}, "env, one per line: ", h("code", {}, "STEP:NAME=VALUE"), h("textarea", { id: "env", placeholder: "unreliable:CAIRN_UNRELIABLE=pass" })),
            h("label", {}, "image, one per line: ", h("code", {}, "STEP=IMAGE"), h("textarea", { id: "image" })),
            h("label", {}, "config (JSON; default: the parent's): ", h("textarea", { id: "config", placeholder: '{"ops": {"op": {"config": {}}}}' }))),
          h("div", { class: "toolbar" },
            h("button", { id: "preview", class: "secondary", onclick: () => submit(true) }, "Preview"),
            h("button", { id: "reexecute", onclick: () => submit(false) }, "Re-execute")),
          h("div", { id: "rx-result" })),
        h("div", { class: "card", id: "plan-card", hidden: true }, h("h2", {}, "Plan of this re-execution"), h("div", { id: "plan" })),
        h("div", { class: "card" }, h("h2", {}, "Lineage"), h("div", { id: "lineage" })))));
  syncMode();
}

function renderRunParts() {
  const run = state.run;
  $("#run-head").replaceChildren(
    h("h1", {}, run.name, " ", h("span", { id: "run-phase", class: `badge ${run.phase}` }, run.phase)),
    h("div", { class: "meta" },
      h("span", {}, "job ", h("b", {}, run.job || "?")), h("span", {}, "progress ", h("b", {}, run.progress)),
      h("span", {}, "duration ", h("b", {}, fmtDur(run.duration) || "-")), run.started ? h("span", {}, "started ", h("b", {}, fmtTime(run.started))) : "",
      run.parent ? h("span", {}, "parent ", runLink(run.parent)) : "", run.root && run.root !== run.name ? h("span", {}, "root ", runLink(run.root)) : "",
      run.mode ? h("span", {}, "mode ", h("b", {}, run.mode)) : "", run.reexecution ? h("span", {}, "reexecution ", h("b", {}, run.reexecution)) : ""),
    run.message ? h("div", { class: "note" }, run.message) : "",
    run.graphError ? h("div", { class: "note" }, run.graphError) : "");
  const ff = $("#mode option[value=FromFailure]");
  ff.disabled = !run.canFromFailure;
  if (ff.disabled && $("#mode").value === "FromFailure") { $("#mode").value = "All"; syncMode(); }
  renderGraph(); renderGantt(); renderSteps(); renderPlan(); renderLineage();
  if (state.step) renderStepDetail(false);
}

function renderGraph() {
  const run = state.run, L = run.layout, W = L.nodeWidth, H = L.nodeHeight, pad = 10;
  const phase = Object.fromEntries(run.steps.map((s) => [s.name, s.phase]));
  const parts = [`<svg id="dag" width="${L.width + 2 * pad}" height="${L.height + 2 * pad}" viewBox="${-pad} ${-pad} ${L.width + 2 * pad} ${L.height + 2 * pad}" xmlns="http://www.w3.org/2000/svg">`,
    `<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#9aa3b2"/></marker></defs>`];
  for (const e of L.edges) {
    const p = e.points;
    let d = `M${p[0][0]},${p[0][1]}`;
    for (let i = 1; i < p.length; i++) { const mx = (p[i - 1][0] + p[i][0]) / 2; d += ` C${mx},${p[i - 1][1]} ${mx},${p[i][1]} ${p[i][0]},${p[i][1]}`; }
    parts.push(`<path class="edge" d="${d}" marker-end="url(#arrow)"/>`);
  }
  for (const [name, pos] of Object.entries(L.nodes)) {
    const label = name.length > 20 ? name.slice(0, 19) + "…" : name;
    parts.push(`<g class="node ${esc(phase[name] || "Pending")}${state.selected.has(name) ? " selected" : ""}" data-step="${esc(name)}" transform="translate(${pos.x},${pos.y})">` +
      `<title>${esc(name)}: ${esc(phase[name] || "Pending")}</title><rect width="${W}" height="${H}"/><text x="10" y="${H / 2 + 4}">${esc(label)}</text></g>`);
  }
  parts.push("</svg>");
  const g = $("#graph");
  g.innerHTML = parts.join("");
  g.onclick = (ev) => { const n = ev.target.closest(".node"); if (n) toggleStep(n.dataset.step); };
}

function renderGantt() {
  const steps = state.run.steps.filter((s) => s.started);
  const box = $("#gantt");
  if (!steps.length) { box.replaceChildren(h("p", { class: "muted" }, "No step has started yet.")); return; }
  const t0 = Math.min(...steps.map((s) => s.started));
  const now = Date.now() / 1000;
  const t1 = Math.max(...steps.map((s) => s.finished || now));
  const span = Math.max(t1 - t0, 0.001), laneW = 150, width = 640, rowH = 20;
  const x = (t) => laneW + ((t - t0) / span) * (width - laneW - 10);
  const parts = [`<svg width="${width}" height="${steps.length * rowH + 24}" xmlns="http://www.w3.org/2000/svg">`,
    `<line class="axis" x1="${laneW}" y1="0" x2="${laneW}" y2="${steps.length * rowH}"/>`,
    `<text class="lane" x="${laneW}" y="${steps.length * rowH + 16}">0</text><text class="lane" x="${width - 60}" y="${steps.length * rowH + 16}">${esc(fmtDur(span))}</text>`];
  steps.forEach((s, i) => {
    const x0 = x(s.started), x1 = Math.max(x(s.finished || now), x0 + 4);
    parts.push(`<text class="lane" x="0" y="${i * rowH + 14}">${esc(s.name.slice(0, 22))}</text>` +
      `<rect class="bar ${esc(s.phase)}${state.selected.has(s.name) ? " selected" : ""}" data-step="${esc(s.name)}" x="${x0}" y="${i * rowH + 3}" width="${x1 - x0}" height="${rowH - 6}" rx="3"><title>${esc(s.name)} ${esc(s.phase)} ${esc(fmtDur((s.finished || now) - s.started))}</title></rect>`);
  });
  parts.push("</svg>");
  box.innerHTML = parts.join("");
  box.onclick = (ev) => { const b = ev.target.closest(".bar"); if (b) toggleStep(b.dataset.step); };
}

function renderSteps() {
  const rows = state.run.steps.map((s) => h("tr", { class: `clickable${state.step === s.name ? " current" : ""}`, "data-step": s.name, onclick: () => { state.step = s.name; renderSteps(); renderStepDetail(true); } },
    h("td", {}, s.name), h("td", {}, badge(s.phase)), h("td", {}, s.attempts.length ? String(s.attempts.length) : ""),
    h("td", {}, fmtDur(s.started ? (s.finished || Date.now() / 1000) - s.started : null)), h("td", {}, s.reason || ""),
    h("td", {}, runLink(s.sourceRun)), h("td", {}, String(s.outputs.length || ""))));
  $("#steps").replaceChildren(h("table", {}, h("tr", {}, ["Step", "Phase", "Attempts", "Duration", "Reason", "Outputs from", "Outputs"].map((c) => h("th", {}, c))), rows));
}

async function renderStepDetail(reloadLog) {
  const s = state.run.steps.find((x) => x.name === state.step);
  if (!s) return;
  $("#step-card").hidden = false;
  const box = $("#step-detail");
  const prevAttempt = $("#attempt") ? $("#attempt").value : "";
  const pre = logPre();
  box.replaceChildren(
    h("h2", {}, `Step ${s.name} `, badge(s.phase)),
    s.message ? h("div", { class: "note mono" }, s.message) : "",
    h("div", { class: "toolbar" }, "Attempt ",
      h("select", { id: "attempt", onchange: () => renderStepDetail(true) }, (s.attempts.length ? s.attempts : [1]).slice().reverse().map((a) => h("option", { value: a, selected: String(a) === prevAttempt }, a))),
      h("button", { class: "secondary", onclick: () => { closeLogStream(); renderStepDetail(true); } }, "Reload log"),
      h("span", { id: "log-source", class: "muted" }, state.logSource || "")),
    pre,
    h("h2", {}, "Outputs"),
    s.outputs.length ? h("table", {}, h("tr", {}, ["Output", "Location", "Size", "sha256 / etag", "From run"].map((c) => h("th", {}, c))),
      s.outputs.map((o) => h("tr", {}, h("td", {}, o.name), h("td", { class: "mono" }, o.uri || o.key || ""), h("td", {}, o.size ?? ""),
        h("td", { class: "mono" }, (o.sha256 || o.etag || "").slice(0, 16)), h("td", {}, runLink(o.sourceRun))))) : h("p", { class: "muted" }, "None."));
  // The log of the running attempt is followed (server-sent events) while it runs; otherwise it is read at once.
  const attempt = Number($("#attempt").value);
  const running = s.phase === "Running" && attempt === s.attempt;
  const key = `${state.run.name}/${s.name}/${attempt}`;
  if (running && state.info && state.info.liveLogs) {
    const ls = logStream;
    if (!ls || ls.key !== key || (ls.ended && ls.retryAt && Date.now() > ls.retryAt)) openLogStream(key, s.name, attempt);
    return;
  }
  const wasFollowed = logStream !== null;  // it ended or another step is selected: show the saved log
  closeLogStream();
  if (reloadLog || wasFollowed || state.logMissing || s.phase === "Running" || s.phase === "Retrying") await loadLog();
  if (running && state.info && !state.info.liveLogs) setLogSource(`${state.logSource || ""} — no live log on a local instance: in-process steps write no per-step log`);
}

async function loadLog() {
  const a = $("#attempt") ? $("#attempt").value : "";
  const pre = logPre();
  try {
    const r = await api(`/api/runs/${encodeURIComponent(state.run.name)}/steps/${encodeURIComponent(state.step)}/logs${a ? `?attempt=${a}` : ""}`);
    if (logStream) return;  // a live log was opened meanwhile
    state.logMissing = r.source === "none";  // not saved yet: read again on the run's next change
    pre.textContent = r.text || (r.message ? `(${r.message})` : "(empty)");
    setLogSource((r.source ? `from ${r.source}` : "") + (r.note ? ` — ${r.note}` : ""));
  } catch (e) { if (!logStream) { pre.textContent = `(${e.status ? `${e.status}: ` : ""}${e.message})`; setLogSource(""); } }
}

// ----- a live log: GET .../logs/stream, read with fetch (a refusal keeps its status and message) --
const LOG_MAX_LINES = 5000;  // lines kept in the page; older ones are dropped
let logStream = null;  // {key, ctrl, ended, retryAt, dropped}

function logPre() {  // one <pre> kept across re-renders: its lines and scroll position survive a refresh
  if (!state.logPre) state.logPre = h("pre", { class: "log", id: "log" }, "…");
  return state.logPre;
}

function setLogSource(text) {
  state.logSource = text;
  const el = $("#log-source");
  if (el) el.textContent = text;
}

function closeLogStream() {
  if (logStream) { logStream.ctrl.abort(); logStream = null; }
}

async function openLogStream(key, step, attempt) {
  closeLogStream();
  const ls = logStream = { key, ctrl: new AbortController(), ended: false, retryAt: 0, dropped: false };
  const pre = logPre();
  pre.textContent = "";
  setLogSource("connecting to the live log…");
  const url = `/api/runs/${encodeURIComponent(state.run.name)}/steps/${encodeURIComponent(step)}/logs/stream?attempt=${attempt}`;
  try {
    const resp = await fetch(url, { signal: ls.ctrl.signal, headers: { Accept: "text/event-stream" } });
    if (!resp.ok) {
      let msg = `${resp.status} ${resp.statusText}`;
      try { msg = (await resp.json()).error || msg; } catch (_) { /* not JSON */ }
      if (logStream !== ls) return;
      pre.textContent = `(${resp.status}: ${msg})`;
      setLogSource("no live log");
      ls.ended = true;
      if ([400, 404, 502, 503].includes(resp.status)) ls.retryAt = Date.now() + 3000;  // not started yet, or gone
      return;
    }
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) { onLogEvent(ls, buf.slice(0, i)); buf = buf.slice(i + 2); }
    }
  } catch (e) {
    if (e.name === "AbortError" || logStream !== ls) return;
    setLogSource(`live log interrupted: ${e.message}`);
    ls.retryAt = Date.now() + 3000;
  }
  ls.ended = true;
}

function onLogEvent(ls, frame) {
  if (logStream !== ls) return;
  let event = "message", data = "";
  for (const line of frame.split("\n")) {
    if (line.startsWith("event: ")) event = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (!data) return;  // a comment (keep-alive) or retry
  const d = JSON.parse(data);
  if (event === "open") setLogSource(`live from ${d.source}${d.note ? ` — ${d.note}` : ""}`);
  else if (event === "log") appendLogLines(ls, d);
  else if (event === "end") { ls.ended = true; setLogSource(`${d.source} ended; the saved log replaces this once the step ends`); }
  else if (event === "error") { ls.ended = true; ls.retryAt = Date.now() + 3000; setLogSource(`live log stopped (${d.status}: ${d.error})`); }
}

function appendLogLines(ls, lines) {
  const pre = logPre();
  const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;  // else the user scrolled up: stay
  const frag = document.createDocumentFragment();
  for (const line of lines) frag.append(document.createTextNode(line + "\n"));  // one text node per line
  pre.append(frag);
  for (let extra = pre.childNodes.length - LOG_MAX_LINES; extra > 0; extra--) pre.firstChild.remove();
  if (!ls.dropped && pre.childNodes.length >= LOG_MAX_LINES && lines.length) {
    ls.dropped = true;
    setLogSource(`${state.logSource} (the last ${LOG_MAX_LINES} lines)`);
  }
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

function planView(plan) {
  if (!plan) return h("p", { class: "muted" }, "No plan.");
  return h("div", {},
    h("table", { class: "plan-steps" }, h("tr", {}, h("th", {}, "Runs"), h("th", {}, "Why")),
      (plan.steps || []).map((s) => h("tr", { class: "plan-step", "data-step": s.name }, h("td", {}, s.name), h("td", {}, s.reason)))),
    h("h2", {}, "Reused outputs"),
    (plan.reused || []).length ? h("table", { class: "plan-reused" }, h("tr", {}, ["Step", "Output", "From run", "Key"].map((c) => h("th", {}, c))),
      plan.reused.map((r) => h("tr", { class: "reused-row", "data-step": r.step }, h("td", {}, r.step), h("td", {}, r.output), h("td", {}, runLink(r.sourceRun)), h("td", { class: "mono" }, r.uri || r.key))))
      : h("p", { class: "muted" }, "None."),
    Object.keys(plan.skipped || {}).length ? h("p", { class: "muted" }, "Stay skipped: " + Object.entries(plan.skipped).map(([k, v]) => `${k} (${v})`).join(", ")) : "");
}

function renderPlan() {
  const plan = state.run.plan;
  $("#plan-card").hidden = !plan;
  if (plan) $("#plan").replaceChildren(plan.reexecution ? h("p", { class: "muted" }, `Reexecution ${plan.reexecution}`) : "", planView(plan));
}

function renderLineage() {
  const here = state.run.name;
  const node = (n) => h("li", {}, n.name === here ? h("span", { class: "here" }, n.name) : runLink(n.name), " ", badge(n.phase),
    n.mode ? h("span", { class: "muted" }, ` ${n.mode}`) : "", n.stepSubset ? h("span", { class: "muted" }, ` [${n.stepSubset.join(", ")}]`) : h("span", { class: "muted" }, " [all steps]"),
    n.children.length ? h("ul", { class: "tree" }, n.children.map(node)) : "");
  const t = state.lineage && state.lineage.tree;
  $("#lineage").replaceChildren(t ? h("ul", { class: "tree top" }, node(t)) : h("p", { class: "muted" }, "Root run not visible."));
}

// ----- selection and the re-execute form -------------------------------------------------------
function toggleStep(name) {
  state.selected.has(name) ? state.selected.delete(name) : state.selected.add(name);
  $("#selection").value = [...state.selected].join(" ");
  const mode = $("#mode");
  if (state.selected.size && (mode.value === "All" || mode.value === "SameSteps")) { mode.value = "Selected"; syncMode(); }
  state.step = name;
  renderGraph(); renderGantt(); renderSteps(); renderStepDetail(true);
}

function onSelectionTyped() {
  const names = new Set(state.run.steps.map((s) => s.name));
  state.selected = new Set($("#selection").value.split(/[\s,]+/).map((c) => c.replace(/^[*+]+|[*+]+$/g, "")).filter((n) => names.has(n)));
  renderGraph(); renderGantt();
}

function syncMode() {
  const m = $("#mode").value;
  $("#selection").disabled = !(m === "Selected" || m === "FromSelected");
}

function parseLines(text, sep) {
  const out = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    if (sep === ":") {
      const i = line.indexOf(":"), j = line.indexOf("=", i);
      if (i < 1 || j < 0) throw new Error(`env line "${line}" must look like STEP:NAME=VALUE`);
      (out[line.slice(0, i)] ||= {})[line.slice(i + 1, j)] = line.slice(j + 1);
    } else {
      const i = line.indexOf("=");
      if (i < 1) throw new Error(`image line "${line}" must look like STEP=IMAGE`);
      out[line.slice(0, i)] = line.slice(i + 1);
    }
  }
  return out;
}

function formRequest() {
  const mode = $("#mode").value;
  const body = { mode, selection: $("#selection").value.split(/[\s,]+/).filter(Boolean) };
  body.env = parseLines($("#env").value, ":");
  body.image = parseLines($("#image").value, "=");
  const cfg = $("#config").value.trim();
  if (cfg) { try { body.config = JSON.parse(cfg); } catch (e) { throw new Error(`config is not JSON: ${e.message}`); } }
  return body;
}

async function submit(dry) {
  const out = $("#rx-result");
  showError("");
  let body;
  try { body = formRequest(); } catch (e) { out.replaceChildren(h("div", { class: "error" }, e.message)); return; }
  const name = state.run.name;
  for (const b of [$("#preview"), $("#reexecute")]) b.disabled = true;
  out.replaceChildren(h("p", { class: "muted" }, dry ? "Planning…" : "Creating…"));
  try {
    if (dry) {
      const r = await post(`/api/runs/${encodeURIComponent(name)}/preview`, body);
      out.replaceChildren(h("div", { id: "plan-result" },
        h("p", {}, badge(r.phase), " ", r.message || ""), r.plan ? planView(r.plan) : "", r.cleanup ? h("p", { class: "muted" }, r.cleanup) : ""));
    } else {
      const r = await post(`/api/runs/${encodeURIComponent(name)}/reexecute`, body);
      if (r.childRun) { location.hash = `#/runs/${encodeURIComponent(r.childRun)}`; return; }
      state.following = r.reexecution;
      out.replaceChildren(h("p", { id: "following" }, `Reexecution ${r.reexecution} created; waiting for its child run…`));
      followReexecution();
    }
  } catch (e) {
    out.replaceChildren(h("div", { class: "error", id: "rx-error" }, e.status ? `${e.status}: ${e.message}` : e.message));
  } finally {
    for (const b of [$("#preview"), $("#reexecute")]) if (b) b.disabled = false;
  }
}

async function followReexecution() {
  const name = state.following;
  if (!name) return;
  try {
    const rx = await api(`/api/reexecutions/${encodeURIComponent(name)}`);
    if (rx.childRun) { state.following = null; location.hash = `#/runs/${encodeURIComponent(rx.childRun)}`; return; }
    const f = $("#following");
    if (f) f.textContent = `Reexecution ${name}: ${rx.phase}${rx.message ? ` — ${rx.message}` : ""}`;
    if (["Invalid", "Failed"].includes(rx.phase)) state.following = null;
  } catch (e) { showError(e.message); }
}

// ----- start -----------------------------------------------------------------------------------
(async function main() {
  try {
    state.info = await api("/api/info");
    $("#where").textContent = state.info.kind === "local" ? `local instance ${state.info.home}` : `namespace ${state.info.namespace}${state.info.identity ? ` as ${state.info.identity}` : ""}`;
  } catch (e) { showError(e.message); }
  window.addEventListener("hashchange", route);
  connectEvents();
  await route();
})();
