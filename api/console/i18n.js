// Interface strings, Chinese (default) and English. Incident type names come from the API.
const STRINGS = {
  zh: {
    "title": "AI 网格员 · 指挥中心", "tab.monitor": "监控", "tab.editor": "区域编辑", "logout": "退出",
    "login.title": "登录", "login.key": "API 密钥", "login.submit": "登录", "login.bad": "密钥无效或已吊销",
    "feed.on": "实时", "feed.off": "连接中…", "role.anonymous": "未启用认证",
    "wall.title": "监控墙", "wall.cameras": "{n} 路", "wall.noframe": "暂无画面",
    "wall.behind": "分析滞后 {fps}/{cfg} fps", "wall.worker": "{worker} ({load} 路)", "wall.behind.tip": "一分钟以来分析帧率低于设定的一半: 摄像机或分块过多",
    "health.live": "在线", "health.reconnecting": "重连中", "health.offline": "离线", "health.standby": "待巡",
    "patrol.title": "一键轮巡", "patrol.start": "开始轮巡", "patrol.stop": "停止", "patrol.none": "没有轮巡计划",
    "patrol.progress": "已巡 {visited}/{total} · 成功 {ok} · 失败 {failed}", "patrol.cycle": "第 {cycle} 轮",
    "patrol.now": "正在巡查: {cams}", "patrol.badge": "轮巡中", "patrol.offline": "离线: {cams}",
    "patrol.state.idle": "未开始", "patrol.state.running": "轮巡中", "patrol.state.paused": "已暂停", "patrol.state.waiting": "等待下一轮",
    "patrol.state.stopping": "停止中", "patrol.state.stopped": "已停止", "patrol.state.finished": "已完成",
    "queue.title": "事件队列", "queue.count": "{n} 件", "queue.empty": "暂无事件",
    "filter.state": "全部状态", "filter.type": "全部类型", "filter.site": "全部场所",
    "state.detected": "待处理", "state.dispatched": "已派遣", "state.accepted": "已受理", "state.handled": "已处置",
    "state.closed": "已结案", "state.rejected": "误报", "state.escalated": "已上报",
    "grade": "{g}级", "grade.1": "一级", "grade.2": "二级", "grade.3": "三级", "grade.4": "四级",
    "act.dispatch": "派遣", "act.accept": "受理", "act.handle": "处置完成", "act.close": "结案", "act.reject": "误报", "act.escalate": "上报",
    "act.note": "备注（处置、误报必填）", "act.unit": "默认单位", "act.needNote": "请填写备注", "act.done": "已{action}",
    "detail.snapshot": "证据截图", "detail.clip": "证据视频", "detail.noclip": "暂无视频（事件发生后数秒生成）", "detail.noclip.revisit": "轮巡抓拍：两次抓拍已并排显示在截图中（轮巡摄像机不录视频）", "detail.history": "处置记录",
    "detail.camera": "摄像机", "detail.site": "场所", "detail.zone": "区域", "detail.time": "发现时间", "detail.unit": "承办单位",
    "detail.due": "办理期限", "detail.summary": "描述", "detail.incident": "事件状态", "detail.open": "持续中", "detail.cleared": "已消失",
    "h.at": "时间", "h.actor": "操作人", "h.action": "动作", "h.state": "状态", "h.reason": "说明",
    "ed.select": "选择", "ed.polygon": "多边形", "ed.line": "计数线", "ed.lane": "方向车道", "ed.refresh": "刷新画面",
    "ed.delete": "删除", "ed.revert": "放弃修改", "ed.save": "保存并生效",
    "ed.hint.select": "点击图形选中；拖动白色顶点移动；拖动边中点插入新顶点；右键顶点删除该顶点；Delete 键删除选中图形。",
    "ed.hint.polygon": "依次点击画多边形顶点；点击第一个点、双击或按 Enter 完成；Esc 取消。",
    "ed.hint.line": "点击起点和终点画计数线（从起点看向终点，左→右为“进”）。",
    "ed.hint.lane": "先画车道多边形（Enter 完成），再点击两点画出允许的行驶方向箭头。",
    "ed.hint.arrow": "现在点击两点：箭头起点和终点（允许行驶方向）。",
    "ed.saved": "已保存，服务已应用新配置。", "ed.savedTemp": "已应用（此摄像机来自配置文件：重启后恢复配置文件内容，请将下列配置写入配置文件）。",
    "ed.nothing": "未选中图形。画一个区域、计数线或方向车道，或点击已有图形。",
    "ed.kind": "类型", "ed.kind.zone": "区域", "ed.kind.mask": "屏蔽区", "ed.kind.line": "计数线", "ed.kind.lane": "方向车道",
    "ed.id": "编号", "ed.name": "名称", "ed.rules": "规则", "ed.addRule": "添加规则", "ed.removeRule": "移除",
    "ed.classes": "目标类别（逗号分隔）", "ed.direction": "允许方向（来自箭头）", "ed.unsaved": "有未保存的修改",
    "ed.forbidden": "当前角色不能修改区域", "err.generic": "出错了: {msg}",
    "ed.signal": "信号灯", "ed.calibration": "地面标定", "ed.kind.signal": "信号灯", "ed.kind.calibration": "地面标定",
    "ed.hint.signal": "依次点击画出信号灯灯头所在区域；点击第一个点、双击或按 Enter 完成。",
    "ed.hint.calibration": "在地面上依次点击四个点（沿四边形顺序），然后在右侧填写每个点的地面坐标（米）。",
    "ed.signalHint": "image：从画面该区域读取灯色；api：由信号机通过 API 推送状态。", "ed.source": "来源",
    "ed.source.image": "画面识别 (image)", "ed.source.api": "接口推送 (api)",
    "ed.calHint": "四个画面点及其地面位置（米），用于测速和密度。点的顺序需沿四边形一周。",
    "ed.image": "画面点", "ed.groundX": "地面 X (米)", "ed.groundY": "地面 Y (米)", "ed.removeCal": "删除标定",
    "ed.calNeedsGround": "请先填写四个标定点的地面坐标（米）。", "ed.apiSignals": "接口推送的信号灯", "ed.addApiSignal": "添加",
    // the numbers and the map (issue 15, stats.js, map.js)
    "tab.stats": "统计", "tab.map": "地图", "st.trend": "趋势", "st.byType": "按类型", "st.byState": "按状态", "st.byUnit": "按单位",
    "st.byPerson": "按人员", "st.bySite": "按场所", "st.lastDays": "近 {n} 天", "st.custom": "自定义", "st.perDay": "按日", "st.perWeek": "按周",
    "st.refresh": "查询", "st.csv": "导出 CSV", "st.xlsx": "导出 Excel", "st.loading": "统计中…", "st.truncated": "分组过多，仅显示最大的部分",
    "st.total": "案件数", "st.finished": "已办结", "st.onTimeRate": "按时办结率", "st.meanHandling": "平均处置时长（分钟）", "st.open": "在办",
    "st.col.name": "名称", "st.col.total": "案件数", "st.col.finished": "已办结", "st.col.onTime": "按时/考核", "st.col.rate": "按时办结率",
    "st.col.mean": "平均处置（分钟）", "st.none": "该时段无数据",
    "map.cases": "案件", "map.cameras": "摄像机", "map.areas": "网格", "map.plain": "未配置底图：显示经纬网格与网格/场所轮廓",
    "map.open": "查看案件", "map.nothing": "没有带位置的摄像机或案件", "map.count": "{cases} 件案件 · {cameras} 路摄像机",
  },
  en: {
    "title": "AI grid worker · Command centre", "tab.monitor": "Monitor", "tab.editor": "Zone editor", "logout": "Log out",
    "login.title": "Log in", "login.key": "API key", "login.submit": "Log in", "login.bad": "Invalid or revoked key",
    "feed.on": "live", "feed.off": "connecting…", "role.anonymous": "auth off",
    "wall.title": "Video wall", "wall.cameras": "{n} cameras", "wall.noframe": "no picture yet",
    "wall.behind": "behind {fps}/{cfg} fps", "wall.worker": "{worker} ({load} cameras)", "wall.behind.tip": "analysed below half the configured fps for a minute: too many cameras or tiles for this machine",
    "health.live": "live", "health.reconnecting": "reconnecting", "health.offline": "offline", "health.standby": "standby",
    "patrol.title": "One-click patrol", "patrol.start": "Start patrol", "patrol.stop": "Stop", "patrol.none": "No patrol plans",
    "patrol.progress": "visited {visited}/{total} · ok {ok} · failed {failed}", "patrol.cycle": "cycle {cycle}",
    "patrol.now": "visiting: {cams}", "patrol.badge": "patrol", "patrol.offline": "offline: {cams}",
    "patrol.state.idle": "idle", "patrol.state.running": "running", "patrol.state.paused": "paused", "patrol.state.waiting": "waiting",
    "patrol.state.stopping": "stopping", "patrol.state.stopped": "stopped", "patrol.state.finished": "finished",
    "queue.title": "Incident queue", "queue.count": "{n}", "queue.empty": "No incidents",
    "filter.state": "All states", "filter.type": "All types", "filter.site": "All sites",
    "state.detected": "new", "state.dispatched": "dispatched", "state.accepted": "accepted", "state.handled": "handled",
    "state.closed": "closed", "state.rejected": "false alarm", "state.escalated": "escalated",
    "grade": "G{g}", "grade.1": "grade 1", "grade.2": "grade 2", "grade.3": "grade 3", "grade.4": "grade 4",
    "act.dispatch": "Dispatch", "act.accept": "Accept", "act.handle": "Handled", "act.close": "Close", "act.reject": "False alarm", "act.escalate": "Escalate",
    "act.note": "Note (needed for handled and false alarm)", "act.unit": "default unit", "act.needNote": "Write a note first", "act.done": "{action}: done",
    "detail.snapshot": "Snapshot", "detail.clip": "Clip", "detail.noclip": "No clip (yet: it is cut a few seconds after the opening)", "detail.noclip.revisit": "Patrol captures: both are side by side in the snapshot (patrol cameras keep no video)", "detail.history": "History",
    "detail.camera": "Camera", "detail.site": "Site", "detail.zone": "Zone", "detail.time": "Detected", "detail.unit": "Unit",
    "detail.due": "Due", "detail.summary": "Summary", "detail.incident": "On camera", "detail.open": "still there", "detail.cleared": "cleared",
    "h.at": "At", "h.actor": "Actor", "h.action": "Action", "h.state": "State", "h.reason": "Reason",
    "ed.select": "Select", "ed.polygon": "Polygon", "ed.line": "Count line", "ed.lane": "Directed lane", "ed.refresh": "Refresh frame",
    "ed.delete": "Delete", "ed.revert": "Discard", "ed.save": "Save & apply",
    "ed.hint.select": "Click a shape to select it; drag a white vertex to move it; drag an edge's midpoint to insert a vertex; right-click a vertex to remove it; Delete removes the selected shape.",
    "ed.hint.polygon": "Click the vertices; click the first one, double-click or press Enter to finish; Esc cancels.",
    "ed.hint.line": "Click the start and the end (looking from start to end, left → right counts as in).",
    "ed.hint.lane": "Draw the lane polygon (Enter finishes), then click two points for the allowed direction.",
    "ed.hint.arrow": "Now click two points: the arrow's start and end (the allowed direction of travel).",
    "ed.saved": "Saved; the service applies it now.", "ed.savedTemp": "Applied (this camera comes from the config file: a restart restores the file, so copy this scene into it).",
    "ed.nothing": "Nothing selected. Draw a zone, count line or directed lane, or click a shape.",
    "ed.kind": "Kind", "ed.kind.zone": "zone", "ed.kind.mask": "mask (ignore)", "ed.kind.line": "count line", "ed.kind.lane": "directed lane",
    "ed.id": "Id", "ed.name": "Name", "ed.rules": "Rules", "ed.addRule": "Add rule", "ed.removeRule": "Remove",
    "ed.classes": "Classes (comma separated)", "ed.direction": "Allowed direction (from the arrow)", "ed.unsaved": "unsaved changes",
    "ed.forbidden": "This role may not edit zones", "err.generic": "Error: {msg}",
    "ed.signal": "Signal", "ed.calibration": "Calibration", "ed.kind.signal": "signal head", "ed.kind.calibration": "ground calibration",
    "ed.hint.signal": "Click around the signal head; click the first point, double-click or press Enter to finish.",
    "ed.hint.calibration": "Click four points on the ground, in order around them, then enter where each lies on the ground, in metres.",
    "ed.signalHint": "image: the lamp colour is read from this region; api: a signal controller pushes the state.", "ed.source": "Source",
    "ed.source.image": "read from the image", "ed.source.api": "pushed through the API",
    "ed.calHint": "Four image points and their ground positions in metres, for speeds and densities. Keep them in order around the quadrilateral.",
    "ed.image": "image point", "ed.groundX": "ground X (m)", "ed.groundY": "ground Y (m)", "ed.removeCal": "Remove calibration",
    "ed.calNeedsGround": "Enter the ground metres of all four calibration points first.", "ed.apiSignals": "Signals pushed through the API", "ed.addApiSignal": "Add",
    // the numbers and the map (issue 15, stats.js, map.js)
    "tab.stats": "Numbers", "tab.map": "Map", "st.trend": "Trend", "st.byType": "By type", "st.byState": "By state", "st.byUnit": "By unit",
    "st.byPerson": "By person", "st.bySite": "By site", "st.lastDays": "last {n} days", "st.custom": "custom", "st.perDay": "per day", "st.perWeek": "per week",
    "st.refresh": "Show", "st.csv": "Export CSV", "st.xlsx": "Export Excel", "st.loading": "counting…", "st.truncated": "too many groups: the largest are shown",
    "st.total": "cases", "st.finished": "finished", "st.onTimeRate": "on-time rate", "st.meanHandling": "mean handling (min)", "st.open": "open",
    "st.col.name": "name", "st.col.total": "cases", "st.col.finished": "finished", "st.col.onTime": "on time/judged", "st.col.rate": "on-time rate",
    "st.col.mean": "mean handling (min)", "st.none": "nothing in this period",
    "map.cases": "Cases", "map.cameras": "Cameras", "map.areas": "Grid areas", "map.plain": "No basemap configured: a degree grid with area and site outlines",
    "map.open": "Open the case", "map.nothing": "No camera or case has a position", "map.count": "{cases} cases · {cameras} cameras",
  },
};

const LANG_KEY = "gw.lang";
export let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";

export function setLang(next) {
  lang = next === "en" ? "en" : "zh";
  localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  applyI18n(document);
}

export function t(key, vars = {}) {
  const s = STRINGS[lang][key] ?? STRINGS.zh[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : `{${k}}`));
}

export function applyI18n(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}
