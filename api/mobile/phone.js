/* The phone page (/m/): log in, my cases (late first, then newest), a case's evidence and
   position, accept, mark handled with photos, reject as a false alarm. Actions go through the
   queue (queue.js) and are sent when online; new assignments arrive by server-sent events.

   A duty phone is shared: each queued action names the person who queued it, and is sent only
   in that person's session (with the CSRF token of the session the send started in, so an
   action is never sent under another person's cookie). Another person's actions wait for them
   to log in again, or are discarded explicitly after a confirmation; an action the server
   refuses for good (404, 409, 422, ...) stays, with the reason, until its person removes it.
   Logging out (or a session that ended) clears the list and the open case from the page; the
   person's queued actions stay on the phone and are sent when they log in again. */
"use strict";
const MAX_SIDE = 1600;
let csrf = null;
let person = null; // who is logged in: {id, username} from the login answer or /auth/me
let epoch = 0; // bumped whenever the page forgets a person's data: late answers for it are dropped
let cases = [];
let current = null; // the open case's id
let shots = []; // resized photo Blobs for "handled"
let shotUrls = []; // their preview object URLs
let events = null;
let flushing = false;
let acting = false;
let confirming = null; // {keys}: the actions the open confirmation would discard
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

/* A request with the session cookie; unsafe methods carry `token` (the current session's CSRF
   token unless given: a queued action passes the token of the session it is sent in). */
async function api(path, opts = {}, token = csrf) {
  const headers = { ...(opts.headers || {}) };
  if (opts.method && opts.method !== "GET" && token) headers["X-CSRF-Token"] = token;
  return fetch(path, { credentials: "same-origin", cache: "no-store", ...opts, headers });
}

// -- login --------------------------------------------------------------------------------
/* The person logged in now and their session's CSRF token; another person than the page showed
   (or none before) starts from a clean page. */
function setPerson(p, token) {
  if (!person || person.id !== p.id) wipe();
  person = { id: p.id, username: p.username };
  csrf = token;
}

async function whoami() {
  try {
    const r = await api("/auth/me");
    if (r.ok) {
      const me = await r.json();
      if (me.csrf_token && me.person && typeof me.person.id === "number") {
        actions = me.actions || {};
        setPerson(me.person, me.csrf_token);
        return true;
      }
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
  const answer = await r.json();
  setPerson(answer.person, answer.csrf_token);
  $("password").value = "";
  await whoami(); // the actions this role may take
  await start();
}

/* Log out: the session ends, the page forgets the person's cases. Their queued actions stay on
   the phone (nothing they did is lost) and are sent when they log in again. */
async function logout() {
  const mine = person ? (await PhoneQueue.all()).filter((a) => a.person === person.id && !a.refused).length : 0;
  try { await api("/auth/logout", { method: "POST" }); } catch (e) { /* offline: the page forgets the person anyway */ }
  await sessionEnded();
  if (mine) toast(W().kept(mine));
}

/* The session is over (logged out, expired, ended by an admin): forget the person and their cases. */
async function sessionEnded() {
  csrf = null;
  person = null;
  actions = {};
  if (events) { events.close(); events = null; }
  wipe();
  show("login");
  await showPending();
}

/* Clear every case of the person from the page: the list, the open case, unsent photos. */
function wipe() {
  epoch += 1;
  cases = [];
  current = null;
  $("cases").innerHTML = "";
  $("empty").hidden = true;
  $("title").textContent = W().title;
  for (const id of ["c-type", "c-state", "c-summary", "c-due", "c-where"]) $(id).textContent = "";
  delete $("c-state").dataset.state;
  $("c-overdue").hidden = true;
  $("c-photos").innerHTML = "";
  const snap = $("c-snapshot");
  snap.onload = null;
  snap.removeAttribute("src");
  snap.hidden = true;
  const clip = $("c-clip");
  clip.removeAttribute("src");
  clip.hidden = true;
  const dir = $("c-directions");
  dir.removeAttribute("href");
  dir.hidden = true;
  for (const id of ["accept", "handle", "reject", "case-msg"]) $(id).hidden = true;
  $("note").value = "";
  $("reason").value = "";
  dropShots();
  closeConfirm();
}

function dropShots() {
  for (const u of shotUrls) URL.revokeObjectURL(u);
  shots = [];
  shotUrls = [];
  $("shot-previews").innerHTML = "";
  $("shots").value = "";
}

// -- the list -------------------------------------------------------------------------------
async function loadCases() {
  if (!person) return;
  const mine = epoch;
  try {
    const r = await api("/me/cases");
    if (mine !== epoch) return; // the page has forgotten that person meanwhile
    if (r.status === 401 || r.status === 403) { await sessionEnded(); return; }
    if (!r.ok) return;
    const items = (await r.json()).items;
    if (mine !== epoch) return;
    cases = items;
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
  const mine = epoch;
  dropShots();
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
    if (mine !== epoch || current !== id) return; // logged out, or another case opened meanwhile
    if (inc.has_clip) { clip.src = `/incidents/${id}/clip.mp4`; clip.hidden = false; }
    $("c-summary").textContent = inc.summary || "";
    const photos = await (await api(`/workorders/${id}/photos`)).json();
    if (mine !== epoch || current !== id) return;
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
  const mine = epoch;
  for (const f of $("shots").files) {
    if (shots.length >= PhoneQueue.MAX_PHOTOS) { toast(W().max_photos(PhoneQueue.MAX_PHOTOS)); break; }
    const blob = await resizePhoto(f, MAX_SIDE);
    if (mine !== epoch) return; // logged out meanwhile
    shots.push(blob);
    const img = document.createElement("img");
    img.src = URL.createObjectURL(blob);
    shotUrls.push(img.src);
    $("shot-previews").appendChild(img);
  }
  $("shots").value = "";
}

// -- actions: queued, then sent ----------------------------------------------------------------
/* Queue an action of the person logged in; false when it was not kept (the outbox is full). */
async function act(action) {
  if (!person || acting) return false;
  acting = true;
  try {
    try {
      await PhoneQueue.add({ ...action, person: person.id, person_name: person.username });
    } catch (e) {
      toast(e instanceof PhoneQueue.Full ? W().full(PhoneQueue.MAX) : W().not_saved);
      return false;
    }
  } finally { acting = false; }
  const o = cases.find((c) => c.incident_id === action.id);
  if (o) { o.state = { accept: "accepted", handle: "handled", reject: "rejected" }[action.kind]; renderCase(); renderList(); }
  if (!navigator.onLine) { toast(W().queued); }
  await showPending();
  flush();
  return true;
}

/* The outbox as the person holding the phone should see it: their own actions waiting, their
   own refused actions with the reason, and everyone else's, by person, waiting for them. */
async function showPending() {
  const all = await PhoneQueue.all();
  const w = W();
  const mine = person ? all.filter((a) => a.person === person.id) : [];
  const waiting = mine.filter((a) => !a.refused).length;
  $("pending-own").textContent = w.pending(waiting);
  $("pending-own").hidden = waiting === 0;
  const ul = $("pending-list");
  ul.innerHTML = "";
  for (const a of mine.filter((x) => x.refused)) {
    const li = document.createElement("li");
    li.className = "refused";
    li.dataset.key = a.key;
    const text = document.createElement("span");
    const note = a.note ? ` · ${a.note.slice(0, 80)}` : "";
    text.textContent = `${w.refused}${w.kinds[a.kind] || a.kind} #${a.id}: ${a.refused.reason}${note}`;
    li.append(text, discardButton(w.remove, [a.key], w.confirm_refused));
    ul.appendChild(li);
  }
  const others = new Map(); // person id (or "" for actions queued before they named one) → actions
  for (const a of all) {
    if (person && a.person === person.id) continue;
    const id = typeof a.person === "number" ? String(a.person) : "";
    if (!others.has(id)) others.set(id, []);
    others.get(id).push(a);
  }
  for (const [id, list] of others) {
    const li = document.createElement("li");
    li.className = "other";
    li.dataset.person = id;
    const text = document.createElement("span");
    const who = id ? String(list[list.length - 1].person_name || id) : "";
    text.textContent = id ? w.others(list.length, who) : w.nobody(list.length);
    li.appendChild(text);
    if (person) li.appendChild(discardButton(w.discard, list.map((a) => a.key), id ? w.confirm_others(list.length, who) : w.confirm_nobody(list.length)));
    ul.appendChild(li);
  }
  $("pending-list").hidden = ul.children.length === 0;
  $("pending").hidden = waiting === 0 && ul.children.length === 0;
}

function discardButton(label, keys, question) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "link discard";
  b.textContent = label;
  b.addEventListener("click", () => askDiscard(keys, question));
  return b;
}

/* Discarding queued actions is never silent: it asks first, and removes only the actions it named. */
function askDiscard(keys, question) {
  if (!person) return;
  confirming = { keys: keys.slice() };
  $("confirm-text").textContent = question;
  $("confirm").hidden = false;
  $("confirm-no").focus();
}

function closeConfirm() {
  confirming = null;
  $("confirm").hidden = true;
  $("confirm-text").textContent = "";
}

async function confirmDiscard() {
  const c = confirming;
  closeConfirm();
  if (!c || !person) return;
  await PhoneQueue.removeAll(c.keys);
  toast(W().discarded);
  await showPending();
}

/* Send one action in the session whose CSRF token is `token`; the server's answer. */
async function send(a, token) {
  const key = { "Idempotency-Key": a.key };
  if (a.kind === "handle") {
    if (a.photos && a.photos.length) {
      const form = new FormData();
      a.photos.forEach((b, i) => form.append("photo", b, `photo-${i}.jpg`));
      const r = await api(`/workorders/${a.id}/photos`, { method: "POST", body: form, headers: { "Idempotency-Key": a.key + "-photos" } }, token);
      if (!r.ok) return r;
    }
    return api(`/workorders/${a.id}/handle`, { method: "POST", headers: { ...key, "Content-Type": "application/json" }, body: JSON.stringify({ note: a.note }) }, token);
  }
  const body = a.kind === "reject" ? { note: a.note } : {};
  return api(`/workorders/${a.id}/${a.kind}`, { method: "POST", headers: { ...key, "Content-Type": "application/json" }, body: JSON.stringify(body) }, token);
}

/* Answers after which the same request may still succeed later: try again on the next flush. */
function retryLater(status) { return status >= 500 || status === 408 || status === 425 || status === 429; }

async function reasonOf(r) {
  const detail = (await r.json().catch(() => ({}))).detail;
  const text = typeof detail === "string" ? detail.slice(0, 200) : "";
  return text ? `${text} (${r.status})` : `HTTP ${r.status}`;
}

/* Send the logged-in person's waiting actions, in order, in their session only. */
async function flush() {
  if (flushing || !csrf || !person) return;
  flushing = true;
  const who = person.id;
  const token = csrf;
  let ended = false;
  try {
    const waiting = (await PhoneQueue.all()).filter((a) => a.person === who && !a.refused);
    if (!waiting.length) return; // nothing of this person's to send (others' actions wait for them)
    for (const a of waiting) {
      if (!person || person.id !== who || csrf !== token) break; // logged out, or someone else logged in
      let r;
      try { r = await send(a, token); } catch (e) { break; } // offline: try again when the connection returns
      const same = person !== null && person.id === who && csrf === token; // still that session on the page
      if (r.status === 401) { ended = same; break; } // the session is over: the action waits for its person
      if (retryLater(r.status)) break;
      if (r.status === 403) {
        // the CSRF token no longer fits the cookie (another session on this phone), or the role
        // lost the right: ask who is logged in; only a refusal in the same session is final
        if (!same) break;
        if (!(await whoami())) { ended = true; break; }
        if (csrf !== token) break;
      }
      if (r.ok) {
        await PhoneQueue.remove(a.key); // its photos go with it
        if (same) toast(W().sent);
      } else {
        const reason = await reasonOf(r);
        await PhoneQueue.refuse(a.key, r.status, reason); // kept, with the reason, for its person
        if (same) toast(W().refused + reason);
      }
    }
    if (ended) { await sessionEnded(); return; }
    await showPending();
    await loadCases();
  } finally {
    flushing = false;
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
  closeConfirm();
  show("list");
  applyWords();
  await loadCases();
  await showPending();
  listen();
  flush();
}

async function init() {
  applyWords();
  $("lang").addEventListener("click", () => { localStorage.setItem("gw-phone-lang", phoneLang() === "zh" ? "en" : "zh"); applyWords(); renderList(); if (current !== null) renderCase(); showPending(); });
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("back").addEventListener("click", () => { current = null; $("title").textContent = W().title; show("list"); });
  $("accept").addEventListener("click", () => act({ kind: "accept", id: current }));
  $("shots").addEventListener("change", takeShots);
  $("handle").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const note = $("note").value.trim();
    if (!note) { toast(W().need_note); return; }
    if (await act({ kind: "handle", id: current, note, photos: shots.slice() })) dropShots(); // kept until queued
  });
  $("reject").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const note = $("reason").value.trim();
    if (!note) { toast(W().need_reason); return; }
    act({ kind: "reject", id: current, note });
  });
  $("confirm-yes").addEventListener("click", confirmDiscard);
  $("confirm-no").addEventListener("click", closeConfirm);
  window.addEventListener("online", () => { netState(); flush(); });
  window.addEventListener("offline", netState);
  setInterval(() => { if (navigator.onLine) flush(); }, 5000);
  if (await whoami()) await start(); else { show("login"); await showPending(); }
}

init();
