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
    kinds: { accept: "接单", handle: "处理完毕", reject: "标记为误报" },
    others: (n, who) => `${who} 的 ${n} 个操作等待 ${who} 重新登录后提交`,
    nobody: (n) => `${n} 个旧版本保存的操作未提交（未记录提交人）`,
    discard: "丢弃…", remove: "移除…", discard_yes: "丢弃", keep: "保留", discarded: "已丢弃",
    confirm_others: (n, who) => `丢弃 ${who} 的 ${n} 个操作？其处理情况和照片将从本机删除，不会提交。`,
    confirm_nobody: (n) => `丢弃这 ${n} 个操作？其处理情况和照片将从本机删除，不会提交。`,
    confirm_refused: "移除这个未能提交的操作？其处理情况和照片将从本机删除。",
    kept: (n) => `${n} 个未提交的操作保留在本机，重新登录后自动提交`,
    full: (n) => `本机已有 ${n} 个未提交的操作（上限）：请先联网提交或移除`,
    not_saved: "未能保存该操作", max_photos: (n) => `最多 ${n} 张照片`,
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
    kinds: { accept: "Accept", handle: "Mark handled", reject: "Reject as false alarm" },
    others: (n, who) => `${n} action(s) of ${who} wait for ${who} to log in again`,
    nobody: (n) => `${n} action(s) saved by an earlier version of this page, not sent: it did not record who queued them`,
    discard: "Discard…", remove: "Remove…", discard_yes: "Discard", keep: "Keep", discarded: "Discarded",
    confirm_others: (n, who) => `Discard ${n} action(s) of ${who}? Their notes and photos are deleted from this phone and never sent.`,
    confirm_nobody: (n) => `Discard these ${n} action(s)? Their notes and photos are deleted from this phone and never sent.`,
    confirm_refused: "Remove this refused action? Its note and photos are deleted from this phone.",
    kept: (n) => `${n} unsent action(s) stay on this phone and are sent when you log in again`,
    full: (n) => `This phone holds ${n} unsent actions, the most it keeps: send or remove some first`,
    not_saved: "The action could not be saved", max_photos: (n) => `At most ${n} photos`,
    other_lang: "中",
  },
};

function phoneLang() {
  const kept = localStorage.getItem("gw-phone-lang");
  if (kept === "zh" || kept === "en") return kept;
  return (navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en";
}

function W() { return PHONE_WORDS[phoneLang()]; }
