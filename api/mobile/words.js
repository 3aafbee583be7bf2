/* Words of the phone page in Chinese and English (the language follows the phone; EN/中 switches it). */
"use strict";
const PHONE_WORDS = {
  zh: {
    title: "我的案件", username: "用户名", password: "密码", login: "登录", logout: "退出登录", empty: "暂无案件",
    overdue: "超时", due: "时限", directions: "导航前往", accept: "接单", take_photo: "拍照（可多张）", note: "处理情况",
    handled: "处理完毕", false_alarm: "误报？", reason: "原因", reject: "标记为误报", offline: "离线", online: "在线",
    queued: "已保存，联网后自动提交", pending: (n) => `${n} 个操作待提交`, sent: "已提交", new_case: "有新的案件",
    bad_login: "用户名或密码错误", too_many: "尝试次数过多，请稍后再试", need_note: "请填写处理情况", need_reason: "请填写原因",
    refused: "未能提交：", no_position: "无位置信息", reported: "群众报告",
    states: { detected: "待派遣", dispatched: "待接单", escalated: "已上报", accepted: "处理中", handled: "已处理", closed: "已办结", rejected: "误报" },
    other_lang: "EN",
  },
  en: {
    title: "My cases", username: "Username", password: "Password", login: "Log in", logout: "Log out", empty: "No cases",
    overdue: "overdue", due: "Due", directions: "Directions", accept: "Accept", take_photo: "Take photos", note: "What was done",
    handled: "Mark handled", false_alarm: "False alarm?", reason: "Reason", reject: "Reject as false alarm", offline: "offline", online: "online",
    queued: "Saved; it is sent when the connection returns", pending: (n) => `${n} action(s) waiting to be sent`, sent: "Sent", new_case: "New case",
    bad_login: "Wrong username or password", too_many: "Too many attempts; try again later", need_note: "Say what was done", need_reason: "Give the reason",
    refused: "Not done: ", no_position: "No position", reported: "reported by a resident",
    states: { detected: "detected", dispatched: "to accept", escalated: "escalated", accepted: "in hand", handled: "handled", closed: "closed", rejected: "false alarm" },
    other_lang: "中",
  },
};

function phoneLang() {
  const kept = localStorage.getItem("gw-phone-lang");
  if (kept === "zh" || kept === "en") return kept;
  return (navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en";
}

function W() { return PHONE_WORDS[phoneLang()]; }
