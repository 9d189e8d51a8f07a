// The searcher review page: plain DOM, no framework, no build step.
// Every text from the server (file names above all) goes in through textContent or attributes
// set with setAttribute, never through innerHTML: file names are hostile input.
"use strict";

const state = {
  settings: { threshold: 0.5 },
  queryFile: null,
  groups: [], total: 0, offset: 0, limit: 10, current: 0, picked: 0,
  decided: {},  // group id -> "ignored" | "moved"
  lastLog: null,
};

// ---- small helpers ----

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function status(text, isError = false) {
  const node = document.getElementById("status");
  node.textContent = text;
  node.classList.toggle("error", isError);
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const message = (body && body.error) || `${response.status} ${response.statusText}`;
    if (response.status === 401) throw new Error(`${message} (open this page as /?token=YOUR_TOKEN)`);
    throw new Error(message);
  }
  return body;
}

function postJSON(path, data) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data || {}) });
}

const baseName = (path) => String(path).split(/[\\/]/).pop();
const dirName = (path) => String(path).split(/[\\/]/).slice(0, -1).join("/");
const thumb = (id, size = 256) => `/api/images/${encodeURIComponent(id)}/thumbnail?size=${size}`;
const fmt = (value, digits = 3) => (typeof value === "number" ? value.toFixed(digits) : "n/a");
const isNearDuplicate = (hit, metric) => metric === "fused" && hit.score >= state.settings.threshold;

function bytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i ? `${n.toFixed(1)} ${units[i]}` : `${n} B`;
}

function where(hit) {
  // a video hit: its path is the video, frame/time/box say where in it
  if (hit.frame === undefined || hit.frame === null) return null;
  const parts = [`frame ${hit.frame}`, `${fmt(hit.time, 2)} s`];
  if (hit.box) parts.push(`person crop ${hit.box.join(",")}`);
  return parts.join(" · ");
}

// ---- views ----

function show(view) {
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === view);
  if (view === "groups" && !state.groups.length) loadGroups();
  if (view === "catalog") loadInfo();
}

function route() {
  const view = (location.hash.replace("#", "") || "search").split("?")[0];
  show(["search", "groups", "compare", "catalog"].includes(view) ? view : "search");
}

// ---- search ----

async function search(file) {
  state.queryFile = file;
  const metric = document.getElementById("metric").value;
  const top = document.getElementById("top").value || 12;
  const form = new FormData();
  form.append("file", file, file.name);
  status(`searching for ${file.name}…`);
  const started = performance.now();
  try {
    const result = await api(`/api/query?top=${encodeURIComponent(top)}&metric=${encodeURIComponent(metric)}`, { method: "POST", body: form });
    renderResults(result, metric, URL.createObjectURL(file));
    status(`${result.results.length} results in ${Math.round(performance.now() - started)} ms`);
  } catch (e) {
    status(e.message, true);
  }
}

async function searchById(id, label) {
  const metric = document.getElementById("metric").value;
  const top = document.getElementById("top").value || 12;
  status(`searching for ${label}…`);
  try {
    const result = await api(`/api/images/${encodeURIComponent(id)}/similar?top=${encodeURIComponent(top)}&metric=${encodeURIComponent(metric)}`);
    state.queryFile = null;
    location.hash = "#search";
    renderResults(result, metric, thumb(id));
    status(`${result.results.length} results`);
  } catch (e) {
    status(e.message, true);
  }
}

function renderResults(result, metric, queryPicture) {
  const info = document.getElementById("query-info");
  info.replaceChildren(el("img", { src: queryPicture, alt: "query" }), el("div", {}, el("div", { class: "name" }, "Query: ", result.query),
    el("div", { class: "hint" }, `metric ${metric}; green = near duplicate (score ≥ ${state.settings.threshold})`)));
  const grid = document.getElementById("results");
  grid.replaceChildren(...result.results.map((hit) => hitCard(hit, metric)));
  if (!result.results.length) grid.replaceChildren(el("div", { class: "empty" }, "No results: the catalog is empty?"));
}

function hitCard(hit, metric) {
  const dup = isNearDuplicate(hit, metric);
  const video = where(hit);
  const details = Object.entries(hit.scores || {}).map(([k, v]) => `${k} ${k.startsWith("orb_") ? Math.round(v) : fmt(v, k === "mse" ? 5 : 3)}`).join(" · ");
  return el("div", { class: `card${dup ? " dup" : ""}`, title: hit.path, "data-id": hit.id },
    el("div", { class: "pic" }, el("img", { src: thumb(hit.id), alt: baseName(hit.path), loading: "lazy" })),
    el("div", { class: "name" }, `#${hit.rank} `, el("span", { class: "score" }, fmt(hit.score)), " ",
      dup ? el("span", { class: "badge ok" }, "near duplicate") : metric === "fused" ? el("span", { class: "badge" }, "different") : null),
    el("div", { class: "meta" }, baseName(hit.path)),
    video ? el("div", { class: "meta" }, el("span", { class: "badge video" }, hit.box ? "person" : "video"), video) : null,
    el("div", { class: "meta" }, dirName(hit.path)),
    el("div", { class: "meta" }, details),
    el("div", { class: "actions" },
      el("button", { type: "button", onclick: () => searchById(hit.id, baseName(hit.path)) }, "similar"),
      state.queryFile ? el("button", { type: "button", onclick: () => compareUploadWith(hit) }, "compare") : null,
      el("a", { class: "button", href: `/api/images/${encodeURIComponent(hit.id)}/original`, target: "_blank", rel: "noopener" }, "open")));
}

function setupDrop() {
  const drop = document.getElementById("drop");
  const input = document.getElementById("file");
  input.addEventListener("change", () => input.files[0] && search(input.files[0]));
  for (const name of ["dragenter", "dragover"]) drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  drop.addEventListener("drop", (e) => e.dataTransfer.files[0] && search(e.dataTransfer.files[0]));
  document.addEventListener("paste", (e) => {
    const file = [...(e.clipboardData?.files || [])][0];
    if (file) { location.hash = "#search"; search(file); }
  });
}

// ---- duplicate groups ----

async function loadGroups(keepPosition = false, refresh = false) {
  const threshold = document.getElementById("threshold").value || 0.5;
  status("finding duplicate groups…");
  try {
    const url = `/api/groups?threshold=${encodeURIComponent(threshold)}&offset=${state.offset}&limit=${state.limit}`;
    let page = await api(url + (refresh ? "&refresh=true" : ""));
    while (page.job) {  // 202: a job is finding the groups; follow it, then ask again
      const job = await waitForJob(page.job, (j) => status(`finding duplicate groups: ${j.stage || "starting"} ${j.done} of ${j.total || "?"} (${j.elapsed_s.toFixed(0)} s)`));
      if (job.state === "failed") throw new Error(job.error);
      page = await api(url);
    }
    state.groups = page.groups;
    state.total = page.total;
    if (!keepPosition) { state.current = 0; state.picked = 0; }
    state.current = Math.min(state.current, Math.max(0, state.groups.length - 1));
    document.getElementById("groups-summary").textContent =
      `${page.total} groups among ${page.images} images` + (page.ignored ? `; ${page.ignored} marked not duplicates` : "");
    const last = Math.min(page.offset + page.limit, page.total);
    document.getElementById("page-info").textContent = page.total ? `${page.offset + 1}–${last} of ${page.total}` : "";
    renderGroups();
    status("");
  } catch (e) {
    status(e.message, true);
  }
}

function renderGroups() {
  const box = document.getElementById("groups");
  if (!state.groups.length) {
    box.replaceChildren(el("div", { class: "empty" }, "No near-duplicate groups at this threshold."));
    return;
  }
  box.replaceChildren(...state.groups.map((group, index) => groupCard(group, index)));
}

function groupCard(group, index) {
  const decided = state.decided[group.id];
  const current = index === state.current;
  const cards = group.members.map((m, k) => el("div", {
    class: `card${m.keep ? " keep" : ""}${current && k === state.picked ? " picked" : ""}`, title: m.path, "data-id": m.id,
    onclick: () => { state.current = index; state.picked = k; renderGroups(); },
  },
  el("div", { class: "pic" }, el("img", { src: thumb(m.id), alt: baseName(m.path), loading: "lazy" })),
  el("div", { class: "name" }, m.keep ? el("span", { class: "badge ok" }, "KEEP") : null, baseName(m.path)),
  el("div", { class: "meta" }, `score `, el("span", { class: "score" }, fmt(m.score)), ` · ${m.width}x${m.height} · ${bytes(m.size)}`),
  el("div", { class: "meta" }, dirName(m.path))));
  return el("div", { class: `group${current ? " current" : ""}${decided ? " done" : ""}`, id: `group-${group.id}`, "data-group": group.id },
    el("h3", {}, el("span", {}, group.id), el("span", {}, `${group.members.length} images`),
      el("span", { class: "why" }, `keep ${baseName(group.keep)}: ${group.keep_reason}`),
      decided ? el("span", { class: "state" }, decided) : null),
    el("div", { class: "row" }, cards),
    el("div", { class: "buttons" },
      el("button", { type: "button", onclick: () => { state.current = index; keepPicked(); } }, "keep picked (Enter)"),
      el("button", { type: "button", onclick: () => { state.current = index; ignoreGroup(); } }, "not duplicates (i)"),
      el("button", { type: "button", onclick: () => { state.current = index; ignoreMember(); } }, "picked is not a duplicate (x)"),
      el("button", { type: "button", onclick: () => { state.current = index; moveGroup(); } }, "move others… (m)"),
      el("button", { type: "button", onclick: () => { state.current = index; comparePicked(); } }, "compare (c)")));
}

function currentGroup() { return state.groups[state.current]; }

function focusGroup(delta) {
  if (!state.groups.length) return;
  const next = state.current + delta;
  if (next >= state.groups.length && state.offset + state.limit < state.total) return changePage(1);
  if (next < 0 && state.offset > 0) return changePage(-1);
  state.current = Math.max(0, Math.min(state.groups.length - 1, next));
  state.picked = 0;
  renderGroups();
  document.getElementById(`group-${currentGroup().id}`)?.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

function pick(delta) {
  const group = currentGroup();
  if (!group) return;
  state.picked = (state.picked + delta + group.members.length) % group.members.length;
  renderGroups();
}

function keepPicked() {
  const group = currentGroup();
  if (!group) return;
  const chosen = group.members[state.picked] || group.members[0];
  for (const m of group.members) m.keep = m === chosen;
  group.keep = chosen.path;
  group.keep_reason = "chosen by you";
  group.members = [chosen, ...group.members.filter((m) => m !== chosen)];
  state.picked = 0;
  renderGroups();
}

async function ignoreGroup() {
  const group = currentGroup();
  if (!group) return;
  try {
    await api(`/api/groups/${encodeURIComponent(group.id)}/ignore?threshold=${encodeURIComponent(document.getElementById("threshold").value)}`, { method: "POST" });
    state.decided[group.id] = "not duplicates";
    status(`${group.id} marked not duplicates: searcher dups will not show it again`);
    renderGroups();
    focusGroup(1);
  } catch (e) {
    status(e.message, true);
  }
}

async function ignoreMember() {
  const group = currentGroup();
  const member = group && group.members[state.picked];
  if (!member) return;
  if (member.keep) { status("pick a copy other than the kept one (← →), then press x", true); return; }
  try {
    await api(`/api/groups/${encodeURIComponent(group.id)}/members/${encodeURIComponent(member.id)}/ignore?threshold=${encodeURIComponent(document.getElementById("threshold").value)}`, { method: "POST" });
    group.members = group.members.filter((m) => m !== member);
    state.picked = 0;
    status(`${baseName(member.path)} is not a duplicate of ${baseName(group.keep)}: it leaves the group at the next refresh`);
    renderGroups();
  } catch (e) {
    status(e.message, true);
  }
}

async function moveGroup() {
  const group = currentGroup();
  if (!group) return;
  const keep = group.members.find((m) => m.keep);
  const body = { keep: keep ? keep.id : null, dry_run: true, threshold: Number(document.getElementById("threshold").value) };
  try {
    const plan = await postJSON(`/api/groups/${encodeURIComponent(group.id)}/move`, body);
    if (!plan.moves.length) { status("nothing to move in this group"); return; }
    if (!(await confirmMoves(plan))) { status("nothing moved"); return; }
    const done = await postJSON(`/api/groups/${encodeURIComponent(group.id)}/move`, { ...body, dry_run: false });
    state.lastLog = done.log;
    state.decided[group.id] = `moved ${done.moved}`;
    status(`moved ${done.moved} file(s)` + (done.skipped.length ? `, skipped ${done.skipped.length}` : "") + " — press u to undo");
    renderGroups();
    focusGroup(1);
  } catch (e) {
    status(e.message, true);
  }
}

function confirmMoves(plan) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = `Keep ${baseName(plan.keep)} and move ${plan.moves.length} file(s)?`;
  document.getElementById("confirm-list").replaceChildren(...plan.moves.map((m) => el("li", {}, m.from, " → ", m.to)));
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-ok").focus();
  });
}

async function undoLast() {
  try {
    const log = state.lastLog || (await api("/api/moves")).logs[0];
    if (!log) { status("no move to undo"); return; }
    const done = await postJSON("/api/undo", { log });
    state.lastLog = null;
    status(`undo: ${done.restored.length} restored, ${done.skipped.length} skipped`);
    state.decided = {};
    loadGroups(true);
  } catch (e) {
    status(e.message, true);
  }
}

function changePage(delta) {
  const offset = state.offset + delta * state.limit;
  if (offset < 0 || offset >= state.total) return;
  state.offset = offset;
  loadGroups().then(() => { if (delta < 0) { state.current = state.groups.length - 1; renderGroups(); } });
}

function comparePicked() {
  const group = currentGroup();
  if (!group) return;
  const keep = group.members.find((m) => m.keep) || group.members[0];
  const other = group.members[state.picked] && group.members[state.picked] !== keep ? group.members[state.picked] : group.members.find((m) => m !== keep);
  compareIds(keep, other);
}

// ---- compare ----

async function compareIds(a, b) {
  location.hash = "#compare";
  status("comparing…");
  try {
    renderComparison(await api(`/api/compare?a=${encodeURIComponent(a.id)}&b=${encodeURIComponent(b.id)}`));
    status("");
  } catch (e) {
    status(e.message, true);
  }
}

async function compareFiles(a, b) {
  const form = new FormData();
  form.append("a", a, a.name || "a");
  form.append("b", b, b.name || "b");
  location.hash = "#compare";
  status("comparing…");
  try {
    renderComparison(await api("/api/compare", { method: "POST", body: form }));
    status("");
  } catch (e) {
    status(e.message, true);
  }
}

async function compareUploadWith(hit) {
  const response = await fetch(`/api/images/${encodeURIComponent(hit.id)}/original`, { credentials: "same-origin" });
  if (!response.ok) { status(`cannot read ${baseName(hit.path)}`, true); return; }
  const blob = await response.blob();
  compareFiles(state.queryFile, new File([blob], baseName(hit.path)));
}

function renderComparison(c) {
  const rows = [
    ["size A / B", `${c.size_a.join("x")} / ${c.size_b.join("x")}`],
    ["hist CORREL", fmt(c.hist.correl, 4)], ["hist CHISQR distance", fmt(c.hist.chisqr_distance, 2)],
    ["hist INTERSECT", fmt(c.hist.intersect, 4)], ["hist BHATTACHARYYA distance", fmt(c.hist.bhattacharyya_distance, 4)],
    ["MSE distance", fmt(c.mse_distance, 5)], ["MSE distance, best orientation", `${fmt(c.mse_oriented_distance, 5)} (A ${c.orientation})`],
    ["ORB matches / inliers", `${c.orb_matches} / ${c.orb_inliers}${c.orb_mirrored ? " (A mirrored)" : ""}`],
    ["SIFT matches BF / FLANN", `${c.sift_bf_matches} / ${c.sift_flann_matches}`], ["SIFT inliers", c.sift_inliers],
    ["autoencoder cosine", fmt(c.ae_cosine, 4)], ["fused", fmt(c.fused)], ["score", fmt(c.score)],
  ];
  document.getElementById("compare-result").replaceChildren(el("div", { class: "compare" },
    el("div", {}, el("img", { src: c.drawing, alt: "A and B side by side with ORB matches: inliers green, outliers red" })),
    el("div", {},
      el("div", { class: `verdict ${c.near_duplicate ? "yes" : "no"}` }, c.near_duplicate ? "near duplicate" : "not a near duplicate"),
      el("div", { class: "pair" }, el("strong", {}, "A "), c.a),
      el("div", { class: "pair" }, el("strong", {}, "B "), c.b),
      el("p", { class: "hint" }, c.explanation),
      el("table", { class: "measures" }, rows.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, String(v))))))));
}

async function waitForJob(job, onProgress) {
  while (job.state === "queued" || job.state === "running") {
    onProgress(job);
    await new Promise((r) => setTimeout(r, 500));
    job = await api(`/api/jobs/${encodeURIComponent(job.id)}`);
  }
  return job;
}

// ---- catalog: info and ingest ----

async function loadInfo() {
  try {
    document.getElementById("info").textContent = JSON.stringify(await api("/api/info"), null, 2);
  } catch (e) {
    status(e.message, true);
  }
}

async function ingest(path) {
  try {
    let job = await postJSON("/api/ingest", { path });
    const box = document.getElementById("job");
    const bar = el("div");
    const text = el("div", { class: "hint" });
    box.replaceChildren(el("div", { class: "progress" }, bar), text);
    job = await waitForJob(job, (j) => {
      bar.style.width = `${Math.round(j.progress * 100)}%`;
      text.textContent = `${j.target}: ${j.done} of ${j.total || "?"} files, ${j.elapsed_s.toFixed(0)} s`;
    });
    bar.style.width = "100%";
    text.textContent = job.state === "done"
      ? `done: ${Object.entries(job.summary).map(([k, v]) => `${v} ${k}`).join(", ")}` + (job.failures.length ? `; failed: ${job.failures.join("; ")}` : "")
      : `failed: ${job.error}`;
    state.groups = [];
    loadInfo();
  } catch (e) {
    status(e.message, true);
  }
}

// ---- keyboard ----

function onKey(e) {
  if (e.target.closest("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
  if (document.getElementById("confirm").open) return;
  const groupsVisible = !document.getElementById("view-groups").hidden;
  const actions = {
    "/": () => { location.hash = "#search"; document.getElementById("file").click(); },
    g: () => { location.hash = "#groups"; },
  };
  const groupActions = {
    j: () => focusGroup(1), k: () => focusGroup(-1), ArrowDown: () => focusGroup(1), ArrowUp: () => focusGroup(-1),
    ArrowRight: () => pick(1), ArrowLeft: () => pick(-1), l: () => pick(1), h: () => pick(-1),
    Enter: keepPicked, i: ignoreGroup, x: ignoreMember, m: moveGroup, u: undoLast, c: comparePicked,
    n: () => changePage(1), p: () => changePage(-1),
  };
  const action = (groupsVisible && groupActions[e.key]) || actions[e.key];
  if (action) { e.preventDefault(); action(); }
}

// ---- start ----

async function start() {
  setupDrop();
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", route);
  document.getElementById("groups-reload").addEventListener("click", () => { state.offset = 0; state.decided = {}; loadGroups(false, true); });
  document.getElementById("threshold").addEventListener("change", () => { state.offset = 0; loadGroups(); });
  document.getElementById("prev-page").addEventListener("click", () => changePage(-1));
  document.getElementById("next-page").addEventListener("click", () => changePage(1));
  document.getElementById("compare-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const a = document.getElementById("compare-a").files[0], b = document.getElementById("compare-b").files[0];
    if (a && b) compareFiles(a, b); else status("choose two images to compare", true);
  });
  document.getElementById("ingest-form").addEventListener("submit", (e) => {
    e.preventDefault();
    ingest(document.getElementById("ingest-path").value.trim());
  });
  try {
    state.settings = await api("/api/settings");
    document.getElementById("threshold").value = state.settings.threshold;
    const metric = document.getElementById("metric");
    for (const option of [...metric.options]) option.disabled = !state.settings.metrics.includes(option.value);
  } catch (e) {
    status(e.message, true);
  }
  route();
}

start();
