/* The status of one report: its receipt code is the last part of the address. */
"use strict";
let lastStatus = null;

function when(iso) { return iso ? new Date(iso).toLocaleString(reportLang() === "zh" ? "zh-CN" : "en-GB") : "—"; }

function show() {
  if (!lastStatus) return;
  const w = reportWords();
  const s = lastStatus;
  document.getElementById("s-type").textContent = reportLang() === "zh" ? s.type_name_zh : s.type_name_en;
  document.getElementById("s-state").textContent = w.states[s.state] || s.state;
  document.getElementById("s-state").dataset.state = s.state;
  document.getElementById("s-received").textContent = when(s.received_at);
  document.getElementById("s-updated").textContent = when(s.updated_at);
  document.getElementById("status").hidden = false;
}

async function load() {
  const code = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const err = document.getElementById("error");
  const r = await fetch(`/report/receipts/${encodeURIComponent(code)}`, { cache: "no-store" });
  if (!r.ok) { err.textContent = reportWords().unknown; err.hidden = false; return; }
  lastStatus = await r.json();
  show();
}

applyWords(show);
load();
