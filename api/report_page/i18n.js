/* Words of the residents' pages in Chinese and English; the language follows the browser, the
   header button switches it (kept in localStorage). Each word is written once, [Chinese, English], so the
   two languages cannot drift apart in their keys. */
"use strict";
const REPORT_TABLE = {
  title: ["随手拍", "Report a problem"],
  type: ["问题类型", "What is it?"],
  photo: ["照片", "Photo"],
  text: ["问题描述", "What is wrong?"],
  locate: ["获取我的位置", "Use my location"],
  contact: ["联系方式（选填，仅工作人员回访用，不会公开）", "Contact (optional, only for a call back; never shown)"],
  name: ["姓名", "Name"],
  phone: ["电话", "Phone"],
  send: ["提交", "Send"],
  thanks: ["已收到，谢谢！", "Received, thank you!"],
  keep: ["请保存回执码，凭它查看处理进度：", "Keep this receipt code to follow your report:"],
  status: ["查看进度", "See progress"],
  again: ["再报一个", "Report another"],
  status_title: ["处理进度", "Report status"],
  state: ["状态", "Status"],
  received: ["提交时间", "Received"],
  updated: ["最近更新", "Last update"],
  new: ["我要报告问题", "Report a problem"],
  locating: ["正在定位…", "Locating…"],
  located: ["已定位", "Located"],
  no_location: ["无法获取位置", "No location"],
  sending: ["正在提交…", "Sending…"],
  need: ["请描述问题或拍一张照片", "Say what is wrong or take a photo"],
  failed: ["提交失败：", "Not sent: "],
  busy: ["提交太频繁，请稍后再试", "Too many reports; try again later"],
  unknown: ["找不到这个回执码", "No report has this receipt code"],
  states: {
    received: ["已受理", "received"],
    detected: ["已受理，待派遣", "received, to be dispatched"],
    dispatched: ["已派遣", "dispatched"],
    escalated: ["已上报上级", "passed up"],
    accepted: ["处理中", "being handled"],
    handled: ["已处理，待核查", "handled, being checked"],
    closed: ["已办结", "done"],
    rejected: ["经核实不予处理", "not actionable"],
  },
  other_lang: ["English", "中文"],
};

/* The words of a table of [Chinese, English] pairs in `lang` (a nested table, the state names, alike). */
function wordsIn(table, lang) {
  const i = lang === "zh" ? 0 : 1;
  return Object.fromEntries(Object.entries(table).map(([k, v]) => [k, Array.isArray(v) ? v[i] : wordsIn(v, lang)]));
}

const REPORT_WORDS = { zh: wordsIn(REPORT_TABLE, "zh"), en: wordsIn(REPORT_TABLE, "en") };

function reportLang() {
  const kept = localStorage.getItem("gw-report-lang");
  if (kept === "zh" || kept === "en") return kept;
  return (navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en";
}

function reportWords() { return REPORT_WORDS[reportLang()]; }

function applyWords(onChange) {
  const w = reportWords();
  document.documentElement.lang = reportLang();
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = w[el.dataset.t]; });
  const btn = document.getElementById("lang");
  btn.textContent = w.other_lang;
  btn.onclick = () => {
    localStorage.setItem("gw-report-lang", reportLang() === "zh" ? "en" : "zh");
    applyWords(onChange);
    if (onChange) onChange();
  };
}
