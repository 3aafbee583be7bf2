/* Words of the residents' pages in Chinese and English; the language follows the browser, the
   header button switches it (kept in localStorage). */
"use strict";
const REPORT_WORDS = {
  zh: {
    title: "随手拍", type: "问题类型", photo: "照片", text: "问题描述", locate: "获取我的位置",
    contact: "联系方式（选填，仅工作人员回访用，不会公开）", name: "姓名", phone: "电话", send: "提交",
    thanks: "已收到，谢谢！", keep: "请保存回执码，凭它查看处理进度：", status: "查看进度", again: "再报一个",
    status_title: "处理进度", state: "状态", received: "提交时间", updated: "最近更新", new: "我要报告问题",
    locating: "正在定位…", located: "已定位", no_location: "无法获取位置", sending: "正在提交…",
    need: "请描述问题或拍一张照片", failed: "提交失败：", busy: "提交太频繁，请稍后再试", unknown: "找不到这个回执码",
    states: { received: "已受理", detected: "已受理，待派遣", dispatched: "已派遣", escalated: "已上报上级", accepted: "处理中",
              handled: "已处理，待核查", closed: "已办结", rejected: "经核实不予处理" },
    other_lang: "English",
  },
  en: {
    title: "Report a problem", type: "What is it?", photo: "Photo", text: "What is wrong?", locate: "Use my location",
    contact: "Contact (optional, only for a call back; never shown)", name: "Name", phone: "Phone", send: "Send",
    thanks: "Received, thank you!", keep: "Keep this receipt code to follow your report:", status: "See progress", again: "Report another",
    status_title: "Report status", state: "Status", received: "Received", updated: "Last update", new: "Report a problem",
    locating: "Locating…", located: "Located", no_location: "No location", sending: "Sending…",
    need: "Say what is wrong or take a photo", failed: "Not sent: ", busy: "Too many reports; try again later", unknown: "No report has this receipt code",
    states: { received: "received", detected: "received, to be dispatched", dispatched: "dispatched", escalated: "passed up",
              accepted: "being handled", handled: "handled, being checked", closed: "done", rejected: "not actionable" },
    other_lang: "中文",
  },
};

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
