// The command-centre console: video wall, incident queue, one-click patrol; the zone editor
// lives in editor.js. Plain ES modules, no build step; talks only to the public JSON API.
import { api, ApiError, auth, eventStream, login, objectUrl, session } from "./api.js";
import { lang, setLang, t } from "./i18n.js";
import { Editor } from "./editor.js";
import { clipWithTracks } from "./cliptracks.js";
import { StatsView } from "./stats.js";  // the numbers (issue 15)
import { MapView } from "./map.js";  // the map (issue 15)
import { PeopleView } from "./people.js";  // people, admins only (issue 15)

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v; // CSSOM, not an inline style attribute: allowed by the CSP
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
};

const STATES = ["detected", "dispatched", "accepted", "handled", "escalated", "closed", "rejected"];
const ACTION_ORDER = ["accept", "dispatch", "handle", "close", "reject", "escalate"];
const WALL_MS = 2000, FRAME_MS = 1500, ZOOM_MS = 800, PATROL_MS = 1000;

const state = {
  me: null, types: new Map(), cameras: [], plans: [], orders: new Map(), units: [],
  thumbs: new Map(), tiles: new Map(), zoomed: null, detailId: null, feed: null, timers: [],
  slowSince: new Map(),  // camera id → when its analysed fps was first seen below half its fps
};

// -- helpers -------------------------------------------------------------------------------
function typeName(code, order) {
  const k = state.types.get(code);
  if (k) return lang === "zh" ? k.name_zh : k.name_en;
  if (order) return lang === "zh" ? order.type_name_zh : order.type_name_en;
  return code;
}
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { hour12: false }) : "");
function health(cam) {
  const h = cam.health;
  if (h.state === "live") return "live";
  // never streamed: a patrol-only camera between visits is on standby, offline once a patrol could not reach it
  if (h.state === "stopped") return state.plans.some((p) => p.status.offline.some((o) => o.camera_id === cam.id)) ? "offline" : "standby";
  const since = h.since ? Date.parse(h.since) : 0;
  if ((!h.last_frame_at && Date.now() - since > 30000) || Date.now() - since > 60000) return "offline";
  return "reconnecting";
}
function every(ms, fn) {
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try { await fn(); } catch (e) { if (e instanceof ApiError && e.status === 401) return showLogin(); console.warn(e); } finally { busy = false; }
  };
  tick();
  state.timers.push(setInterval(tick, ms));
}

// -- login ---------------------------------------------------------------------------------
function showLogin(message = "") {
  stopAll();
  if ($("#detail").open) $("#detail").close();  // a case's dialog left open does not cover the login
  $("#monitor").hidden = $("#editor").hidden = true;
  $("#stats").hidden = $("#map").hidden = true;  // issue 15
  $("#people").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message;
  $("#login-user").focus();
}

async function start() {
  try {
    state.me = await api("/auth/me");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return showLogin(auth.key ? t("login.bad") : session.csrf ? t("login.ended") : "");
    throw e;
  }
  const me = state.me;
  session.set(me.csrf_token);  // a person logged in (issue 15): changes carry it
  $("#login").hidden = true;
  const who = me.person ? me.person.name : me.name.replace(/^key:[0-9a-f]+:/, "");
  $("#who").textContent = me.auth_required || me.person ? `${who} · ${me.role}${me.unit ? " · " + me.unit : ""}` : t("role.anonymous");
  $("#logout").hidden = !me.auth_required && !me.person;
  document.querySelector('[data-view="editor"]').hidden = !me.may.edit_scene;
  document.querySelector('[data-view="people"]').hidden = me.role !== "admin" || !(me.auth_required || me.person);  // issue 15
  showView("monitor");
  try {
    for (const k of await api("/incident-types")) state.types.set(k.code, k);
  } catch (e) { console.warn(e); }
  try { state.units = (await api("/catalogue")).units || []; } catch (e) { console.warn(e); }
  document.querySelector(".wall-panel").hidden = !me.may.wall;
  $("#patrol-panel").hidden = !me.may.patrol;
  fillFilters();
  if (me.may.wall) {
    every(WALL_MS, refreshCameras);
    every(FRAME_MS, refreshFrames);
  }
  if (me.may.patrol) every(PATROL_MS, refreshPatrol);
  state.feed = eventStream(me.events_url, onCaseEvent, {
    onState: (on) => { const f = $("#feed-state"); f.dataset.state = on ? "on" : "off"; f.textContent = t(on ? "feed.on" : "feed.off"); if (on) loadQueue(); },
    onUnauthorized: () => showLogin(auth.key ? t("login.bad") : t("login.ended")),  // at once, not at the next poll
  });
  every(30000, loadQueue);  // a safety net: the feed is the fast path
}

function stopAll() {
  state.timers.forEach(clearInterval);
  state.timers = [];
  state.feed?.close();
  state.feed = null;
}

// -- wall ----------------------------------------------------------------------------------
function patrolling() {
  const m = new Map();
  for (const p of state.plans) for (const c of p.status.in_flight) m.set(c, p.plan.name || p.plan.id);
  return m;
}

async function refreshCameras() {
  state.cameras = await api("/cameras");
  renderWall();
}

function renderWall() {
  const wall = $("#wall");
  const visiting = patrolling();
  const cams = [...state.cameras].sort((a, b) =>
    (b.open_incident_types.length > 0) - (a.open_incident_types.length > 0) || visiting.has(b.id) - visiting.has(a.id) || a.id.localeCompare(b.id));
  $("#wall-count").textContent = t("wall.cameras", { n: cams.length });
  wall.classList.toggle("dense", cams.length > 8);
  const seen = new Set();
  for (const cam of cams) {
    seen.add(cam.id);
    let tile = state.tiles.get(cam.id);
    if (!tile) {
      const node = $("#tile-tpl").content.firstElementChild.cloneNode(true);
      tile = { node, img: $("img", node), url: null, busy: false };
      node.dataset.camera = cam.id;
      node.classList.add("noframe");
      tile.img.alt = cam.id;
      node.addEventListener("click", () => openZoom(cam.id));
      state.tiles.set(cam.id, tile);
    }
    const n = tile.node;
    const hs = health(cam);
    n.classList.toggle("alert", cam.open_incident_types.length > 0);
    n.classList.toggle("patrolling", visiting.has(cam.id));
    if (visiting.has(cam.id)) n.dataset.patrol = `${t("patrol.badge")} · ${visiting.get(cam.id)}`;
    n.dataset.health = hs;
    n.dataset.noframe = t("wall.noframe");
    // cluster mode (issue 12): the worker that runs the camera and that worker's load
    $(".name", n).textContent = (cam.name || cam.id) + (cam.worker ? ` · ${t("wall.worker", { worker: cam.worker, load: cam.worker_load })}` : "");
    const h = $(".health", n);
    h.className = `health ${hs}`;
    h.textContent = t(`health.${hs}`);
    const lag = $(".lag", n), behind = analysisBehind(cam);
    lag.hidden = !behind;
    lag.textContent = behind ? t("wall.behind", { fps: cam.analysed_fps, cfg: cam.fps }) : "";
    lag.title = behind ? t("wall.behind.tip") : "";
    $(".types", n).replaceChildren(...cam.open_incident_types.map((c) => el("span", { class: "t", "data-type": c }, typeName(c))));
    wall.append(n);  // (re)appending keeps the sort order
  }
  for (const [id, tile] of state.tiles) if (!seen.has(id)) { tile.node.remove(); state.tiles.delete(id); state.slowSince.delete(id); }
}

// issue 16: a live camera analysed below half its configured fps for pipeline.behind_window_s, a minute by default (the service logs
// it and exports gridworker_camera_behind; the wall judges it from /cameras' analysed_fps, or
// takes the service's own verdict when /cameras carries `analysis_behind`)
const BEHIND_MS = 60_000;
function analysisBehind(cam) {
  if (typeof cam.analysis_behind === "boolean") return cam.analysis_behind;
  const slow = cam.health.state === "live" && cam.analysed_fps < cam.fps / 2;
  if (!slow) { state.slowSince.delete(cam.id); return false; }
  if (!state.slowSince.has(cam.id)) state.slowSince.set(cam.id, Date.now());
  return Date.now() - state.slowSince.get(cam.id) >= BEHIND_MS;
}

async function loadFrame(id, tile) {
  if (tile.busy) return;
  tile.busy = true;
  try {
    const url = await objectUrl(`/cameras/${encodeURIComponent(id)}/frame.jpg?t=${Date.now()}`);
    const old = tile.url;
    tile.url = url;
    tile.img.src = url;
    tile.node.classList.remove("noframe");
    if (state.zoomed === id) $("#zoom-img").src = url;
    if (old) setTimeout(() => URL.revokeObjectURL(old), 5000);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e;  // 404: no analysed frame yet
  } finally { tile.busy = false; }
}

async function refreshFrames() {
  await Promise.all([...state.tiles].filter(([id]) => id !== state.zoomed).map(([id, tile]) => loadFrame(id, tile)));
}

function openZoom(id) {
  const cam = state.cameras.find((c) => c.id === id);
  state.zoomed = id;
  $("#zoom-title").textContent = `${cam?.name || id} (${id})`;
  const tile = state.tiles.get(id);
  if (tile?.url) $("#zoom-img").src = tile.url;
  const dlg = $("#zoom");
  dlg.showModal();
  const timer = setInterval(() => tile && loadFrame(id, tile).catch(console.warn), ZOOM_MS);
  dlg.addEventListener("close", () => { clearInterval(timer); state.zoomed = null; }, { once: true });
}

// -- patrol --------------------------------------------------------------------------------
async function refreshPatrol() {
  state.plans = await api("/patrol/plans");
  renderPatrol();
}

function renderPatrol() {
  const box = $("#plans");
  if (!state.plans.length) return box.replaceChildren(el("p", { class: "hint" }, t("patrol.none")));
  const control = state.me.may.patrol_control;
  box.replaceChildren(...state.plans.map(({ plan, cameras, status: s }) => {
    const running = ["running", "paused", "waiting", "stopping"].includes(s.state);
    const button = control
      ? el("button", { class: running ? "danger" : "primary", "data-plan": plan.id, "data-action": running ? "stop" : "start",
          onclick: (ev) => patrolAction(plan.id, running ? "stop" : "start", ev.target) }, t(running ? "patrol.stop" : "patrol.start"))
      : null;
    const total = s.total || cameras;
    const fails = s.failed_this_cycle.map((f) => `${f.camera_id}: ${f.reason}`);
    return el("div", { class: "plan", "data-plan": plan.id, "data-state": s.state },
      el("header", {}, el("b", {}, plan.name || plan.id), el("span", { class: "state" }, t(`patrol.state.${s.state}`)), button),
      el("div", { class: "progress" }, el("div", { style: `width:${Math.round(100 * (s.progress || 0))}%` })),
      el("div", { class: "counts" }, `${s.cycle ? t("patrol.cycle", { cycle: s.cycle }) + " · " : ""}${t("patrol.progress", { visited: s.visited, total, ok: s.ok, failed: s.failed })}`),
      s.in_flight.length ? el("div", { class: "now" }, t("patrol.now", { cams: s.in_flight.join(", ") })) : null,
      fails.length ? el("div", { class: "fail" }, fails.join("; ")) : null,
      s.offline.length ? el("div", { class: "fail" }, t("patrol.offline", { cams: s.offline.map((o) => o.camera_id).join(", ") })) : null);
  }));
  renderWall();
}

async function patrolAction(id, verb, button) {
  button.disabled = true;
  try { await api(`/patrol/plans/${encodeURIComponent(id)}/${verb}`, { method: "POST" }); await refreshPatrol(); }
  catch (e) { alert(t("err.generic", { msg: e.message })); }
  finally { button.disabled = false; }
}

// -- queue ---------------------------------------------------------------------------------
function fillFilters() {
  const opts = (sel, first, items) => sel.replaceChildren(el("option", { value: "" }, first), ...items.map(([v, label]) => el("option", { value: v }, label)));
  opts($("#f-state"), t("filter.state"), STATES.map((s) => [s, t(`state.${s}`)]));
  opts($("#f-type"), t("filter.type"), [...state.types.values()].map((k) => [k.code, typeName(k.code)]));
  const sites = new Set([...state.cameras.map((c) => c.site), ...[...state.orders.values()].map((o) => o.site)].filter(Boolean));
  const keep = $("#f-site").value;
  opts($("#f-site"), t("filter.site"), [...sites].sort().map((s) => [s, s]));
  $("#f-site").value = sites.has(keep) ? keep : "";
}

function filters() {
  return { state: $("#f-state").value, type: $("#f-type").value, site: $("#f-site").value };
}
const matches = (o, f) => (!f.state || o.state === f.state) && (!f.type || o.type === f.type) && (!f.site || o.site === f.site);

async function loadQueue() {
  const f = filters();
  const q = new URLSearchParams({ limit: "100" });
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  const page = await api(`/workorders?${q}`);
  state.orders = new Map(page.items.map((o) => [o.incident_id, o]));
  renderQueue();
}

async function onCaseEvent(msg) {
  const id = msg.incident_id;
  if (!id) return;
  let order;
  try { order = await api(`/workorders/${id}`); } catch (e) { if (e instanceof ApiError && e.status === 404) return; throw e; }
  const isNew = !state.orders.has(id);
  if (matches(order, filters())) state.orders.set(id, order); else state.orders.delete(id);
  renderQueue(isNew ? id : null);
  if (state.detailId === id && state.detailVersion !== order.version) openDetail(id, false);
}

function renderQueue(fresh = null) {
  const list = $("#queue");
  const orders = [...state.orders.values()].sort((a, b) => Date.parse(b.detected_at) - Date.parse(a.detected_at));
  $("#queue-count").textContent = t("queue.count", { n: orders.length });
  if (!orders.length) return list.replaceChildren(el("li", { class: "hint" }, t("queue.empty")));
  list.replaceChildren(...orders.map((o) => {
    const img = el("img", { alt: "" });
    thumb(o.incident_id).then((u) => { if (u) img.src = u; });
    const li = el("li", { "data-incident": o.incident_id, "data-state": o.state, "data-type": o.type, onclick: () => openDetail(o.incident_id) },
      img,
      el("div", {},
        el("div", { class: "what" }, el("span", { class: `grade g${o.grade}` }, t("grade", { g: o.grade })), typeName(o.type, o)),
        el("div", { class: "meta" }, `${o.camera_id} · ${o.site || "—"} · ${fmtTime(o.detected_at)}`)),
      el("span", { class: `state ${o.state}` }, t(`state.${o.state}`)));
    if (o.incident_id === fresh) li.classList.add("fresh");
    return li;
  }));
}

async function thumb(id) {
  if (!state.thumbs.has(id)) state.thumbs.set(id, objectUrl(`/incidents/${id}/snapshot.jpg`).catch(() => null));
  return state.thumbs.get(id);
}

// -- one case: evidence, history, actions ---------------------------------------------------
async function openDetail(id, show = true) {
  state.detailId = id;
  const [order, incident] = await Promise.all([api(`/workorders/${id}`), api(`/incidents/${id}`).catch(() => null)]);
  if (!state.me || state.detailId !== id) return;  // logged out, or another case opened, while this one loaded
  state.detailVersion = order.version;  // a feed message about this version changes nothing (and keeps a note being typed)
  const body = $("#detail-body");
  const typed = $("#act-note")?.value || "";  // a re-render (feed message) keeps what is being typed
  const snap = el("img", { alt: t("detail.snapshot") });
  thumb(id).then((u) => { if (u) snap.src = u; });
  const clipBox = el("figure", { class: "clip" }, el("figcaption", {}, t("detail.clip")));
  if (incident?.clip_url) {
    objectUrl(incident.clip_url).then((u) => clipBox.append(clipWithTracks(u, id))).catch(() => clipBox.append(t("detail.noclip")));
  } else {
    // why there is none: the store's reason, or a patrol case (two captures in the snapshot, no video ring)
    const why = incident?.clip_missing || (incident?.details?.method === "revisit" ? t("detail.noclip.revisit") : t("detail.noclip"));
    clipBox.append(el("p", { class: "hint" }, why));
  }
  const kv = (k, v) => [el("dt", {}, t(k)), el("dd", {}, v ?? "—")];
  body.replaceChildren(
    el("h2", {}, el("span", { class: `grade g${order.grade}` }, t("grade", { g: order.grade })), `${typeName(order.type, order)} #${id} `,
      el("span", { class: `state ${order.state}`, id: "detail-state", "data-state": order.state }, t(`state.${order.state}`))),
    el("div", { class: "evidence" }, el("figure", {}, el("figcaption", {}, t("detail.snapshot")), snap), clipBox),
    casePhotos(id),  // the report's and the handler's photos (issue 15)
    el("dl", { class: "kv" },
      ...kv("detail.camera", incident?.camera_name ? `${incident.camera_name} (${order.camera_id})` : order.camera_id),
      ...kv("detail.site", order.site), ...kv("detail.zone", incident?.zone_id), ...kv("detail.time", fmtTime(order.detected_at)),
      ...kv("detail.unit", unitName(order.unit)), ...kv("detail.due", fmtTime(order.due_at)),
      ...kv("detail.summary", incident?.summary),
      ...kv("detail.incident", incident ? t(incident.status === "open" ? "detail.open" : "detail.cleared") : null)),
    actionBar(order, typed),
    el("h3", {}, t("detail.history")),
    el("table", {}, el("tr", {}, ...["h.at", "h.actor", "h.action", "h.state", "h.reason"].map((k) => el("th", {}, t(k)))),
      ...(order.audit || []).map((a) => el("tr", { "data-action": a.action },
        el("td", {}, fmtTime(a.at)), el("td", {}, a.actor.replace(/^key:[0-9a-f]+:/, "")), el("td", {}, a.action),
        el("td", {}, `${a.from_state ? t(`state.${a.from_state}`) + " → " : ""}${t(`state.${a.to_state}`)}`), el("td", {}, a.reason)))),
  );
  const dlg = $("#detail");
  if (show && !dlg.open) {
    dlg.showModal();
    dlg.addEventListener("close", () => { state.detailId = null; }, { once: true });
  }
}

/** The case's photos (issue 15, docs/people.md): the resident's or platform's report photos and the handler's. */
function casePhotos(id) {
  const box = el("div", { class: "case-photos", id: "case-photos" });
  api(`/workorders/${id}/photos`).then((photos) => {
    for (const p of photos) {
      const img = el("img", { alt: p.kind, title: `${p.kind} ${fmtTime(p.created_at)}`, "data-kind": p.kind });
      objectUrl(p.url).then((u) => { img.src = u; }).catch(() => {});
      box.append(img);
    }
  }).catch(() => {});
  return box;
}

function unitName(code) {
  const u = state.units.find((x) => x.code === code);
  return u ? `${lang === "zh" ? u.name_zh : u.name_en} (${code})` : code;
}

function actionBar(order, typed = "") {
  const allowed = ACTION_ORDER.filter((a) => (state.me.actions[a] || []).includes(order.state));
  if (!allowed.length) return el("div", { class: "actions" });
  const note = el("input", { id: "act-note", placeholder: t("act.note") });
  note.value = typed;
  const unit = el("select", { id: "act-unit" }, el("option", { value: "" }, t("act.unit")),
    ...state.units.map((u) => el("option", { value: u.code }, lang === "zh" ? u.name_zh : u.name_en)));
  const buttons = allowed.map((a) => el("button", {
    "data-act": a, class: a === "reject" ? "danger" : a === "close" || a === "dispatch" ? "primary" : "",
    onclick: (ev) => act(order.incident_id, a, note, unit, ev.target),
  }, t(`act.${a}`)));
  return el("div", { class: "actions" }, note, allowed.includes("dispatch") || allowed.includes("escalate") ? unit : null, ...buttons);
}

async function act(id, action, noteInput, unitSelect, button) {
  const note = noteInput.value.trim();
  if ((action === "handle" || action === "reject") && !note) { noteInput.focus(); noteInput.placeholder = t("act.needNote"); return; }
  const body = { note };
  if ((action === "dispatch" || action === "escalate") && unitSelect.value) body.unit = unitSelect.value;
  button.disabled = true;
  try {
    const order = await api(`/workorders/${id}/${action}`, { method: "POST", body });
    noteInput.value = "";
    if (matches(order, filters())) state.orders.set(id, order); else state.orders.delete(id);
    renderQueue();
    if (state.detailId === id) await openDetail(id, false);  // the dialog may have been closed meanwhile
  } catch (e) {
    alert(t("err.generic", { msg: e.message }));
    button.disabled = false;
  }
}

// -- views, language, boot ------------------------------------------------------------------
let editor = null, statsView = null, mapView = null, peopleView = null;
function showView(name) {
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.view === name);
  $("#monitor").hidden = name !== "monitor";
  $("#editor").hidden = name !== "editor";
  $("#stats").hidden = name !== "stats";  // the numbers and the map (issue 15)
  $("#map").hidden = name !== "map";
  $("#people").hidden = name !== "people";  // people (issue 15)
  if (name === "people") (peopleView ??= new PeopleView($("#people"), state)).open().catch(console.warn);
  if (name === "stats") (statsView ??= new StatsView($("#stats"), state)).open().catch(console.warn);
  if (name === "map") (mapView ??= new MapView($("#map"), state, (id) => openDetail(id))).open().catch(console.warn);
  if (name === "editor") {
    editor ??= new Editor($("#editor"), state);
    editor.open().catch((e) => { $("#ed-status").textContent = t("err.generic", { msg: e.message }); });
  }
}

function relabel() {
  $("#lang").textContent = lang === "zh" ? "EN" : "中文";
  if (!state.me) return;
  fillFilters();
  renderQueue();
  if (state.me.may.wall) renderWall();
  if (state.me.may.patrol) renderPatrol();
  editor?.render();
  statsView?.render();
  mapView?.render();
  peopleView?.render();
  const f = $("#feed-state");
  f.textContent = t(f.dataset.state === "on" ? "feed.on" : "feed.off");
}

document.addEventListener("DOMContentLoaded", () => {
  setLang(lang);
  relabel();
  $("#lang").addEventListener("click", () => { setLang(lang === "zh" ? "en" : "zh"); relabel(); });
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => showView(b.dataset.view));
  for (const id of ["#f-state", "#f-type", "#f-site"]) $(id).addEventListener("change", () => loadQueue().catch(console.warn));
  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const user = $("#login-user").value.trim();
    const password = $("#login-password").value;
    $("#login-password").value = "";
    if (user) {  // a person (issue 15): username and password, a session cookie
      try { await login(user, password); } catch (e) {
        const status = e instanceof ApiError ? e.status : 0;
        return showLogin(status === 401 ? t("login.badpw") : status === 429 ? t("login.slow") : e.message);
      }
    } else {
      auth.set($("#login-key").value);
      $("#login-key").value = "";
    }
    start().catch((e) => showLogin(e.message));
  });
  $("#logout").addEventListener("click", async () => {
    if (state.me && state.me.person) await api("/auth/logout", { method: "POST" }).catch(console.warn);
    auth.clear(); session.set(""); state.me = null; showLogin();
  });
  start().catch((e) => showLogin(e.message));
});

