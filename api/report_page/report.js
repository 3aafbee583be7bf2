/* The residents' report page: a type from the catalogue, a photo from the camera (resized in the
   browser before upload), the phone's position, a short text; posts multipart to /report/submit
   and shows the receipt code. */
"use strict";
const MAX_SIDE = 1600;
let types = [];
let photo = null; // a resized JPEG Blob
let position = null; // {lon, lat}

function $(id) { return document.getElementById(id); }

function fillTypes() {
  const sel = $("type");
  const keep = sel.value;
  sel.innerHTML = "";
  for (const t of types) {
    const o = document.createElement("option");
    o.value = t.code;
    o.textContent = reportLang() === "zh" ? t.name_zh : t.name_en;
    sel.appendChild(o);
  }
  if (keep) sel.value = keep;
}

function locate() {
  const w = reportWords();
  if (!navigator.geolocation) { $("where").textContent = w.no_location; return; }
  $("where").textContent = w.locating;
  navigator.geolocation.getCurrentPosition(
    (p) => {
      position = { lon: p.coords.longitude, lat: p.coords.latitude };
      $("where").textContent = `${w.located} ${position.lat.toFixed(5)}, ${position.lon.toFixed(5)}`;
    },
    () => { $("where").textContent = w.no_location; },
    { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 },
  );
}

function fail(msg) { const e = $("error"); e.textContent = msg; e.hidden = false; }

async function send(ev) {
  ev.preventDefault();
  const w = reportWords();
  $("error").hidden = true;
  const text = $("text").value.trim();
  if (!text && !photo) { fail(w.need); return; }
  const form = new FormData();
  form.append("type", $("type").value);
  form.append("text", text);
  if (position) { form.append("lon", String(position.lon)); form.append("lat", String(position.lat)); }
  form.append("contact_name", $("contact_name").value.trim());
  form.append("contact_phone", $("contact_phone").value.trim());
  if (photo) form.append("photo", photo, "photo.jpg");
  const btn = $("send");
  btn.disabled = true;
  btn.textContent = w.sending;
  try {
    const r = await fetch("/report/submit", { method: "POST", body: form });
    if (r.status === 429) { fail(w.busy); return; }
    const out = await r.json().catch(() => ({}));
    if (!r.ok) { fail(w.failed + (out.detail || r.status)); return; }
    const kept = JSON.parse(localStorage.getItem("gw-report-receipts") || "[]");
    kept.unshift(out.receipt);
    localStorage.setItem("gw-report-receipts", JSON.stringify(kept.slice(0, 20)));
    $("receipt").textContent = out.receipt;
    $("status-link").href = out.status_url;
    $("report").hidden = true;
    $("done").hidden = false;
  } catch (e) {
    fail(w.failed + e.message);
  } finally {
    btn.disabled = false;
    btn.textContent = w.send;
  }
}

async function init() {
  applyWords(fillTypes);
  $("photo").addEventListener("change", async () => {
    const file = $("photo").files[0];
    if (!file) return;
    try {
      photo = await resizePhoto(file, MAX_SIDE);
      const img = $("preview");
      img.src = URL.createObjectURL(photo);
      img.hidden = false;
    } catch (e) { photo = null; fail(reportWords().failed + e.message); }
  });
  $("locate").addEventListener("click", locate);
  $("report").addEventListener("submit", send);
  $("again").addEventListener("click", () => location.reload());
  const r = await fetch("/report/types");
  if (r.ok) { types = await r.json(); fillTypes(); }
  locate();
}

init();
