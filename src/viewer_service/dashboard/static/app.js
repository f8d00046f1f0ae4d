// viewer-service dashboard: reads the JSON API with the caller's token (kept in sessionStorage,
// sent as a Bearer header) and draws it. No build step; Chart.js is vendored next to this file.
"use strict";

const TOKEN_KEY = "viewer-token";
const STATUS = ["not started", "in progress", "completed"];
const COLORS = ["#9aa5b1", "#f0b429", "#27ab83"];
const $ = (sel) => document.querySelector(sel);
const charts = {};
let me = null; // who the caller is (GET /v1/report/me)

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function headers() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.params && body.params.errmsg) || "HTTP " + status);
    this.status = status;
  }
}

async function api(path) {
  const r = await fetch(path, { headers: headers() });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new ApiError(r.status, body);
  return body.result;
}

function showError(err) {
  const box = $("#error");
  for (const id of ["#home", "#context", "#learner"]) $(id).hidden = true; // show nothing half-loaded
  if (err.status === 401) {
    box.textContent = "Sign in: paste your access token above.";
    $("#token-form").hidden = false;
  } else if (err.status === 403) {
    box.textContent = "You may not see this page: " + err.message + ". ";
    if (me && me.userId) box.append(el("a", { href: "/dashboard/learner/" + encodeURIComponent(me.userId) }, "Your own page"));
  } else if (err.status === 404) {
    box.textContent = "Not found: " + err.message;
  } else {
    box.textContent = "Something went wrong: " + err.message;
  }
  box.hidden = false;
  box.dataset.status = err.status || "";
}

const fmtDate = (ms) => (ms ? new Date(ms).toISOString().slice(0, 10) : "");
function duration(ms) {
  if (ms === null || ms === undefined) return "-";
  const h = ms / 3600000;
  return h < 1 ? Math.round(ms / 60000) + " min" : h < 48 ? fmtNum(h) + " h" : fmtNum(h / 24) + " days";
}
const fmtNum = (v, d = 1) => (v === null || v === undefined ? "-" : Number(v).toFixed(d).replace(/\.0+$/, ""));

function bar(progress) {
  const p = Math.max(0, Math.min(100, progress || 0));
  const fill = el("span", { class: "fill" });
  fill.style.width = p + "%";
  return el("span", { class: "progress", role: "progressbar", "aria-valuenow": String(p), "aria-valuemin": "0",
                      "aria-valuemax": "100", title: p + "%" },
                    el("span", { class: "track" }, fill), el("span", { class: "pct" }, p + "%"));
}

function chart(id, config) {
  if (charts[id]) charts[id].destroy();
  config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options);
  charts[id] = new Chart(document.getElementById(id), config);
}

// -- who am I -----------------------------------------------------------------------------------

async function whoAmI() {
  const me = await api("/v1/report/me");
  $("#who").textContent = me.auth === "none" ? "open access (VIEWER_AUTH=none)" : "signed in as " + me.userId;
  $("#sign-out").hidden = !token();
  return me;
}

// -- home: pick a context or a learner ----------------------------------------------------------

async function home(me) {
  if (!me.reports) {
    if (me.userId) location.replace("/dashboard/learner/" + encodeURIComponent(me.userId));
    return;
  }
  $("#home").hidden = false;
  const find = async () => {
    const found = await api("/v1/report/contexts?prefix=" + encodeURIComponent($("#pick-prefix").value.trim()));
    $("#contexts").replaceChildren(...found.contexts.map((c) => el("li", {},
      el("a", { href: "/dashboard/context/" + encodeURIComponent(c.contextId) }, c.contextId),
      " ", el("span", { class: "muted" }, c.type + " · " + (c.collectionIds || []).join(", ")))));
    if (!found.contexts.length) $("#contexts").append(el("li", { class: "muted" }, "no context starts with that"));
  };
  $("#pick").addEventListener("submit", (e) => { e.preventDefault(); find().catch(showError); });
  $("#pick-learner").addEventListener("submit", (e) => {
    e.preventDefault();
    const u = $("#pick-user").value.trim();
    if (u) location.assign("/dashboard/learner/" + encodeURIComponent(u));
  });
  await find();
}

// -- a context: stats and roster ----------------------------------------------------------------

const roster = { cursors: [null], page: 0, rows: [], sort: null, desc: false, next: null };

function query(contextId, extra) {
  const p = new URLSearchParams();
  const coll = $("#ctx-collection").value;
  if (coll) p.set("collectionId", coll);
  for (const [k, v] of Object.entries(extra || {})) if (v !== null && v !== undefined && v !== "") p.set(k, v);
  return "/v1/report/context/" + encodeURIComponent(contextId) + "?" + p.toString();
}

async function loadStats(contextId) {
  const coll = $("#ctx-collection").value;
  const offset = -new Date().getTimezoneOffset();
  const p = new URLSearchParams({ utcOffsetMinutes: String(offset) });
  if (coll) p.set("collectionId", coll);
  const s = await api("/v1/report/context/" + encodeURIComponent(contextId) + "/stats?" + p.toString());
  if (!$("#ctx-collection").options.length) {
    $("#ctx-collection").append(el("option", { value: "" }, "all collections"),
      ...Object.entries(s.collections).map(([id, c]) => el("option", { value: id }, c.name ? c.name + " (" + id + ")" : id)));
  }
  const set = (k, v) => { document.querySelector(`[data-stat="${k}"]`).textContent = v; };
  set("enrolled", s.enrolled);
  for (const k of ["0", "1", "2"]) set("status-" + k, s.byStatus[k]);
  set("median-time", duration(s.medianTimeToCompleteMs));
  $("#ctx-generated").textContent = "as of " + new Date(s.generatedAt).toLocaleString();
  chart("chart-status", {
    type: "doughnut",
    data: { labels: STATUS, datasets: [{ data: ["0", "1", "2"].map((k) => s.byStatus[k]), backgroundColor: COLORS }] },
  });
  chart("chart-progress", {
    type: "bar",
    data: { labels: s.progressHistogram.map((b) => b.bucket + "%"),
            datasets: [{ label: "learners", data: s.progressHistogram.map((b) => b.count), backgroundColor: "#4098d7" }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
  chart("chart-days", {
    type: "line",
    data: { labels: s.completionsPerDay.map((d) => d.date),
            datasets: [{ label: "completions", data: s.completionsPerDay.map((d) => d.count), borderColor: "#27ab83",
                         backgroundColor: "#27ab83", tension: 0.2 }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
  chart("chart-scores", {
    type: "bar",
    data: { labels: s.assessments.map((a) => a.name || a.contentId),
            datasets: [
              { label: "mean best %", data: s.assessments.map((a) => a.meanPercent), backgroundColor: "#4098d7" },
              { label: "pass rate % (≥ " + s.passPercent + "%)", backgroundColor: "#27ab83",
                data: s.assessments.map((a) => (a.learners ? (100 * a.passCount) / a.learners : 0)) }] },
    options: { scales: { y: { beginAtZero: true, max: 100 } } },
  });
  return s;
}

function sortRows() {
  const key = roster.sort;
  if (!key) return roster.rows;
  const val = (r) => (key === "score" ? meanPercent(r) : r[key]);
  return [...roster.rows].sort((a, b) => {
    const x = val(a), y = val(b);
    const c = x === y ? 0 : x === null || x === undefined ? -1 : y === null || y === undefined ? 1 : x < y ? -1 : 1;
    return roster.desc ? -c : c;
  });
}

function meanPercent(r) {
  const xs = Object.values(r.assessments || {}).filter((a) => a.maxScore).map((a) => (100 * a.score) / a.maxScore);
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

function drawRoster() {
  const body = $("#roster tbody");
  body.replaceChildren(...sortRows().map((r) => el("tr", { dataset: { user: r.userId } },
    el("td", {}, el("a", { href: "/dashboard/learner/" + encodeURIComponent(r.userId) }, r.userId),
       r.active ? "" : el("span", { class: "muted" }, " (unenrolled)")),
    el("td", {}, r.collectionId),
    el("td", { dataset: { status: r.status } }, STATUS[r.status] || String(r.status)),
    el("td", {}, bar(r.progress)),
    el("td", {}, fmtDate(r.completedOn)),
    el("td", {}, fmtDate(r.lastAccessTime)),
    el("td", {}, Object.entries(r.assessments || {}).map(([cid, a]) =>
      el("span", { class: "score", title: cid + ", " + a.attempts + " attempt(s)" }, fmtNum(a.score) + "/" + fmtNum(a.maxScore)))))));
  if (!roster.rows.length) body.append(el("tr", {}, el("td", { colspan: "7", class: "muted" }, "no enrolment matches")));
  $("#page-no").textContent = "page " + (roster.page + 1);
  $("#prev").disabled = roster.page === 0;
  $("#next").disabled = !roster.next;
  for (const th of document.querySelectorAll("#roster th")) {
    th.classList.toggle("asc", th.dataset.sort === roster.sort && !roster.desc);
    th.classList.toggle("desc", th.dataset.sort === roster.sort && roster.desc);
  }
}

async function loadPage(contextId) {
  const r = await api(query(contextId, { cursor: roster.cursors[roster.page], limit: $("#page-size").value,
                                         search: $("#search").value.trim(), status: $("#status-filter").value }));
  roster.rows = r.enrolments;
  roster.next = r.nextCursor || null;
  drawRoster();
}

function restart(contextId) {
  roster.cursors = [null];
  roster.page = 0;
  return loadPage(contextId).catch(showError);
}

async function downloadCsv(contextId) {
  const r = await fetch(query(contextId, { format: "csv", search: $("#search").value.trim(),
                                           status: $("#status-filter").value }), { headers: headers() });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  const url = URL.createObjectURL(await r.blob());
  const a = el("a", { href: url, download: contextId.replace(/[^\w.-]/g, "_") + "_roster.csv" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

async function contextPage(contextId) {
  $("#context").hidden = false;
  $("#ctx-id").textContent = contextId;
  document.title = contextId + " · viewer-service";
  const wanted = new URLSearchParams(location.search).get("collectionId");
  if (wanted) $("#ctx-collection").append(el("option", { value: wanted }, wanted));
  await loadStats(contextId);
  if (wanted) $("#ctx-collection").value = wanted;
  $("#ctx-collection").addEventListener("change", () => {
    const u = new URL(location.href);
    if ($("#ctx-collection").value) u.searchParams.set("collectionId", $("#ctx-collection").value);
    else u.searchParams.delete("collectionId");
    history.replaceState(null, "", u);
    loadStats(contextId).catch(showError);
    restart(contextId);
  });
  let typing = null;
  $("#search").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => restart(contextId), 250); });
  $("#status-filter").addEventListener("change", () => restart(contextId));
  $("#page-size").addEventListener("change", () => restart(contextId));
  $("#next").addEventListener("click", () => {
    if (!roster.next) return;
    roster.cursors[roster.page + 1] = roster.next;
    roster.page += 1;
    loadPage(contextId).catch(showError);
  });
  $("#prev").addEventListener("click", () => {
    if (roster.page === 0) return;
    roster.page -= 1;
    loadPage(contextId).catch(showError);
  });
  for (const th of document.querySelectorAll("#roster th")) {
    th.addEventListener("click", () => {
      roster.desc = roster.sort === th.dataset.sort ? !roster.desc : false;
      roster.sort = th.dataset.sort;
      drawRoster();
    });
  }
  $("#csv").addEventListener("click", () => downloadCsv(contextId).catch(showError));
  await loadPage(contextId);
}

// -- a learner ------------------------------------------------------------------------------------

function contentList(contents) {
  if (!contents.length) return "";
  return el("ul", { class: "contents" }, contents.map((c) => el("li", { dataset: { content: c.contentId, status: c.status } },
    el("span", { class: "dot s" + c.status, title: STATUS[c.status] }), c.name || c.contentId,
    " ", el("span", { class: "muted" }, STATUS[c.status] || ""))));
}

const inUnit = (s) => new Set(s.units.flatMap((u) => u.contents.map((c) => c.contentId)));

async function learnerPage(userId) {
  const r = await api("/v1/report/learner/" + encodeURIComponent(userId));
  $("#learner").hidden = false;
  $("#lr-id").textContent = userId;
  document.title = userId + " · viewer-service";
  const scores = (s) => Object.entries(s.assessmentStatus || {});
  const nameOf = (s, cid) => (s.contents.find((c) => c.contentId === cid) || {}).name || cid;
  $("#lr-enrolments").replaceChildren(...r.enrolments.map((s) => el("article", {
      class: "enrolment", dataset: { collection: s.collectionId, context: s.contextId } },
    el("h2", {}, (s.collection && s.collection.name) || s.collectionId),
    el("p", { class: "muted" }, "context " + s.contextId + (s.active ? "" : " · unenrolled") + " · " +
       STATUS[s.status] + (s.completedOn ? " on " + fmtDate(s.completedOn) : "")),
    bar(s.progress),
    s.units.map((u) => el("div", { class: "unit", dataset: { unit: u.unitId } },
      el("div", { class: "unit-head" }, el("span", { class: "label" }, u.name || u.unitId), bar(u.progress)),
      contentList(u.contents))),
    contentList(s.contents.filter((c) => !inUnit(s).has(c.contentId))),
    scores(s).length ? el("p", { class: "scores" }, "Best scores: ", scores(s).map(([cid, a]) =>
      el("span", { class: "score", dataset: { content: cid } }, nameOf(s, cid) + " " + fmtNum(a.score) + "/" + fmtNum(a.max_score)))) : "",
    (s.issuedCertificates || []).length ? el("p", { class: "certs" }, "Certificates: ",
      s.issuedCertificates.map((c) => el("span", { class: "cert" }, c.name || c.identifier || c.id || "certificate"))) : "")));
  if (!r.enrolments.length) $("#lr-enrolments").append(el("p", { class: "muted" }, "no enrolment yet"));
  $("#lr-recent").replaceChildren(...r.recent.map((c) => el("li", {},
    fmtDate(c.completedOn) + " · " + (c.name || c.contentId) + " ", el("span", { class: "muted" }, c.collectionId))));
  if (!r.recent.length) $("#lr-recent").append(el("li", { class: "muted" }, "nothing completed yet"));
}

// -- start ----------------------------------------------------------------------------------------

async function start() {
  $("#token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const t = $("#token").value.trim();
    if (t) { sessionStorage.setItem(TOKEN_KEY, t); location.reload(); }
  });
  $("#sign-out").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); });
  const parts = location.pathname.replace(/\/+$/, "").split("/").slice(2).map(decodeURIComponent);
  try {
    me = await whoAmI();
    if (parts[0] === "context" && parts[1]) await contextPage(parts[1]);
    else if (parts[0] === "learner" && parts[1]) await learnerPage(parts[1]);
    else await home(me);
  } catch (err) {
    showError(err);
  }
  document.body.dataset.ready = "true"; // for tests and screenshots: the page has drawn what it loaded
}

document.addEventListener("DOMContentLoaded", start);
