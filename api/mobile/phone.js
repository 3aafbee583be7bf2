/* The phone page (/m/): log in, my cases (late first, then newest), a case's evidence and
   position, accept, mark handled with photos, reject as a false alarm. Actions go through the
   queue (queue.js) and are sent when online; new assignments arrive by server-sent events. */
"use strict";
const MAX_SIDE = 1600;
let csrf = null;
let cases = [];
let current = null; // the open case's id
let shots = []; // resized photo Blobs for "handled"
let events = null;
let flushing = false;
let actions = {}; // work-order action → the states it starts from, for this person's role (/auth/me)

function $(id) { return document.getElementById(id); }
function show(id) { for (const s of ["login", "list", "case"]) $(s).hidden = s !== id; $("back").hidden = id !== "case"; }
function toast(msg) { const t = $("toast"); t.textContent = msg; t.hidden = false; clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 3000); }
function typeName(o) { return phoneLang() === "zh" ? o.type_name_zh : o.type_name_en; }
function when(iso) { return new Date(iso).toLocaleString(phoneLang() === "zh" ? "zh-CN" : "en-GB", { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" }); }

function applyWords() {
  const w = W();
  document.documentElement.lang = phoneLang();
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = w[el.dataset.t]; });
  $("lang").textContent = w.other_lang;
  netState();
}

function netState() {
  const on = navigator.onLine;
  $("net").textContent = on ? "" : W().offline;
  $("net").className = on ? "net" : "net offline";
}

async function api(path, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  if (opts.method && opts.method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  return fetch(path, { credentials: "same-origin", cache: "no-store", ...opts, headers });
}

// -- login --------------------------------------------------------------------------------
async function whoami() {
  try {
    const r = await api("/auth/me");
    if (r.ok) {
      const me = await r.json();
      actions = me.actions || {};
      if (me.csrf_token) { csrf = me.csrf_token; return true; }
    }
  } catch (e) { /* offline: show what we have */ }
  return false;
}

async function login(ev) {
  ev.preventDefault();
  const err = $("login-error");
  err.hidden = true;
  const r = await api("/auth/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("username").value.trim(), password: $("password").value }),
  });
  if (!r.ok) { err.textContent = r.status === 429 ? W().too_many : W().bad_login; err.hidden = false; return; }
  csrf = (await r.json()).csrf_token;
  $("password").value = "";
  await whoami(); // the actions this role may take
  await start();
}

async function logout() {
  await api("/auth/logout", { method: "POST" });
  csrf = null;
  if (events) events.close();
  show("login");
}

// -- the list -------------------------------------------------------------------------------
async function loadCases() {
  try {
    const r = await api("/me/cases");
    if (r.status === 401 || r.status === 403) { show("login"); return; }
    if (!r.ok) return;
    cases = (await r.json()).items;
  } catch (e) { return; }
  renderList();
  if (current !== null && !$("case").hidden) renderCase();
}

function renderList() {
  const ul = $("cases");
  ul.innerHTML = "";
  for (const o of cases) {
    const li = document.createElement("li");
    li.dataset.id = o.incident_id;
    if (o.overdue) li.classList.add("late");
    const top = document.createElement("div");
    top.className = "top";
    const name = document.createElement("span");
    name.textContent = `#${o.incident_id} ${typeName(o)}`;
    const st = document.createElement("span");
    st.className = "badge state";
    st.textContent = W().states[o.state] || o.state;
    top.append(name, st);
    const sub = document.createElement("div");
    sub.className = "sub";
    const source = o.camera_id.startsWith("report:") ? W().reported : o.camera_id;
    sub.textContent = `${when(o.detected_at)} · ${o.site || source}${o.overdue ? " · " + W().overdue : ""}`;
    li.append(top, sub);
    li.addEventListener("click", () => openCase(o.incident_id));
    ul.appendChild(li);
  }
  $("empty").hidden = cases.length > 0;
}

// -- one case -------------------------------------------------------------------------------
async function openCase(id) {
  current = id;
  shots = [];
  $("shot-previews").innerHTML = "";
  $("note").value = "";
  $("reason").value = "";
  $("case-msg").hidden = true;
  show("case");
  renderCase();
  const snap = $("c-snapshot");
  snap.hidden = true;
  snap.onload = () => { snap.hidden = false; };
  snap.src = `/incidents/${id}/snapshot.jpg`;
  const clip = $("c-clip");
  clip.hidden = true;
  try {
    const inc = await (await api(`/incidents/${id}`)).json();
    if (inc.has_clip) { clip.src = `/incidents/${id}/clip.mp4`; clip.hidden = false; }
    $("c-summary").textContent = inc.summary || "";
    const photos = await (await api(`/workorders/${id}/photos`)).json();
    const box = $("c-photos");
    box.innerHTML = "";
    for (const p of photos) { const img = document.createElement("img"); img.src = p.url; img.alt = p.kind; img.className = p.kind; box.appendChild(img); }
  } catch (e) { /* offline: the list's data is shown */ }
}

function renderCase() {
  const o = cases.find((c) => c.incident_id === current);
  if (!o) return;
  $("title").textContent = `#${o.incident_id}`;
  $("c-type").textContent = typeName(o);
  $("c-state").textContent = W().states[o.state] || o.state;
  $("c-state").dataset.state = o.state;
  $("c-overdue").hidden = !o.overdue;
  $("c-due").textContent = when(o.due_at);
  const pos = o.position;
  const dir = $("c-directions");
  if (pos) {
    $("c-where").textContent = `${pos.lat.toFixed(5)}, ${pos.lon.toFixed(5)}`;
    dir.href = `geo:${pos.lat},${pos.lon}?q=${pos.lat},${pos.lon}`; // the phone's map app (WGS84)
    dir.hidden = false;
  } else {
    $("c-where").textContent = W().no_position;
    dir.hidden = true;
  }
  const may = (action) => (actions[action] || []).includes(o.state);
  $("accept").hidden = !may("accept");
  $("handle").hidden = !may("handle");
  $("reject").hidden = !may("reject"); // a false alarm, where the role may reject
}

async function takeShots() {
  for (const f of $("shots").files) {
    const blob = await resizePhoto(f, MAX_SIDE);
    shots.push(blob);
    const img = document.createElement("img");
    img.src = URL.createObjectURL(blob);
    $("shot-previews").appendChild(img);
  }
  $("shots").value = "";
}

// -- actions: queued, then sent ----------------------------------------------------------------
async function act(action) {
  await PhoneQueue.add(action);
  const o = cases.find((c) => c.incident_id === action.id);
  if (o) { o.state = { accept: "accepted", handle: "handled", reject: "rejected" }[action.kind]; renderCase(); renderList(); }
  if (!navigator.onLine) { toast(W().queued); }
  await showPending();
  flush();
}

async function showPending() {
  const n = (await PhoneQueue.all()).length;
  $("pending").textContent = W().pending(n);
  $("pending").hidden = n === 0;
}

/* Send one action; true when the server has it (done now, or done before: a repeat). */
async function send(a) {
  const key = { "Idempotency-Key": a.key };
  if (a.kind === "handle") {
    if (a.photos && a.photos.length) {
      const form = new FormData();
      a.photos.forEach((b, i) => form.append("photo", b, `photo-${i}.jpg`));
      const r = await api(`/workorders/${a.id}/photos`, { method: "POST", body: form, headers: { "Idempotency-Key": a.key + "-photos" } });
      if (!r.ok && r.status >= 500) throw new Error(String(r.status));
      if (!r.ok) return r;
    }
    return api(`/workorders/${a.id}/handle`, { method: "POST", headers: { ...key, "Content-Type": "application/json" }, body: JSON.stringify({ note: a.note }) });
  }
  const body = a.kind === "reject" ? { note: a.note } : {};
  return api(`/workorders/${a.id}/${a.kind}`, { method: "POST", headers: { ...key, "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

async function flush() {
  if (flushing || !csrf) return;
  flushing = true;
  const waiting = await PhoneQueue.all();
  if (!waiting.length) { flushing = false; return; }
  try {
    for (const a of waiting) {
      let r;
      try { r = await send(a); } catch (e) { break; } // offline: try again when the connection returns
      if (r.status >= 500 || r.status === 401) break;
      await PhoneQueue.remove(a.key);
      if (!r.ok) {
        const detail = (await r.json().catch(() => ({}))).detail || r.status;
        toast(W().refused + detail);
      } else {
        toast(W().sent);
      }
    }
  } finally {
    flushing = false;
    await showPending();
    await loadCases();
  }
}

// -- live: new assignments --------------------------------------------------------------------
function listen() {
  if (events) events.close();
  events = new EventSource("/console/events");
  // the list is read again each time the stream (re)opens: an assignment made after the first
  // read but before the stream was listening, or while it was reconnecting, is not missed
  events.onopen = () => { loadCases().catch(() => {}); };
  events.onmessage = async (m) => {
    const before = new Set(cases.map((c) => c.incident_id));
    await loadCases();
    const data = JSON.parse(m.data);
    if (!before.has(data.incident_id) && cases.some((c) => c.incident_id === data.incident_id)) toast(W().new_case);
  };
}

async function start() {
  show("list");
  applyWords();
  await loadCases();
  await showPending();
  listen();
  flush();
}

async function init() {
  applyWords();
  $("lang").addEventListener("click", () => { localStorage.setItem("gw-phone-lang", phoneLang() === "zh" ? "en" : "zh"); applyWords(); renderList(); if (current !== null) renderCase(); });
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("back").addEventListener("click", () => { current = null; $("title").textContent = W().title; show("list"); });
  $("accept").addEventListener("click", () => act({ kind: "accept", id: current }));
  $("shots").addEventListener("change", takeShots);
  $("handle").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const note = $("note").value.trim();
    if (!note) { toast(W().need_note); return; }
    act({ kind: "handle", id: current, note, photos: shots.slice() });
    shots = [];
    $("shot-previews").innerHTML = "";
  });
  $("reject").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const note = $("reason").value.trim();
    if (!note) { toast(W().need_reason); return; }
    act({ kind: "reject", id: current, note });
  });
  window.addEventListener("online", () => { netState(); flush(); });
  window.addEventListener("offline", netState);
  setInterval(() => { if (navigator.onLine) flush(); }, 5000);
  if (await whoami()) await start(); else show("login");
}

init();
