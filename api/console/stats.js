// The numbers (统计): cases by type, unit, site, state and person over a chosen period, the
// on-time rate and mean handling time, trends per day or week (GET /stats/cases), exported as
// CSV or Excel (/stats/cases.csv, .xlsx). Charts with the vendored ECharts, loaded on first use.
import { api } from "./api.js";
import { $, el, saveBlob } from "./dom.js";
import { lang, t } from "./i18n.js";
import { loadScript } from "./lazy.js";

const ECHARTS = "vendor/echarts/echarts.common.min.js";
const DAY_MS = 86_400_000;
const RANGES = [7, 30, 90, 365];

const pad = (n) => String(n).padStart(2, "0");
const isoDate = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
/** A local date (YYYY-MM-DD) at local midnight. */
const localMidnight = (text) => { const [y, m, d] = text.split("-").map(Number); return new Date(y, m - 1, d); };

export const fmtRate = (r) => (r === null || r === undefined ? "—" : `${(100 * r).toFixed(1)}%`);
export const fmtMinutes = (s) => (s === null || s === undefined ? "—" : (s / 60).toFixed(1));

export class StatsView {
  constructor(root, state) {
    this.root = root;
    this.state = state;  // the console's state: types, units
    this.data = null;
    this.charts = [];
    this.built = false;
  }

  build() {
    const today = new Date();
    const range = el("select", { id: "st-range", onchange: () => this.presetRange() },
      ...RANGES.map((d) => el("option", { value: String(d) }, "")), el("option", { value: "custom" }, ""));
    range.value = "30";
    const since = el("input", { id: "st-since", type: "date", value: isoDate(new Date(today.getTime() - 29 * DAY_MS)), onchange: () => { range.value = "custom"; } });
    const until = el("input", { id: "st-until", type: "date", value: isoDate(today), onchange: () => { range.value = "custom"; } });
    const trend = el("select", { id: "st-trend", onchange: () => this.render() }, el("option", { value: "day" }, ""), el("option", { value: "week" }, ""));
    this.root.replaceChildren(
      el("div", { class: "stats-tools" },
        range, since, el("span", {}, "→"), until, trend,
        el("button", { id: "st-refresh", class: "primary", onclick: () => this.load() }, ""),
        el("span", { class: "spacer" }),
        el("button", { id: "st-csv", onclick: () => this.export("csv") }, ""),
        el("button", { id: "st-xlsx", onclick: () => this.export("xlsx") }, "")),
      el("p", { id: "st-status", class: "status" }),
      el("div", { class: "kpis", id: "st-kpis" }),
      el("div", { class: "stats-charts" },
        el("section", { class: "panel" }, el("h2", { "data-t": "st.trend" }), el("div", { id: "st-chart-trend", class: "chart" })),
        el("section", { class: "panel" }, el("h2", { "data-t": "st.byType" }), el("div", { id: "st-chart-type", class: "chart" })),
        el("section", { class: "panel" }, el("h2", { "data-t": "st.byState" }), el("div", { id: "st-chart-state", class: "chart" }))),
      el("div", { class: "stats-tables" },
        el("section", { class: "panel" }, el("h2", { "data-t": "st.byUnit" }), el("table", { id: "st-unit", class: "figures" })),
        el("section", { class: "panel" }, el("h2", { "data-t": "st.byPerson" }), el("table", { id: "st-person", class: "figures" })),
        el("section", { class: "panel" }, el("h2", { "data-t": "st.byType" }), el("table", { id: "st-type", class: "figures" })),
        el("section", { class: "panel" }, el("h2", { "data-t": "st.bySite" }), el("table", { id: "st-site", class: "figures" }))),
    );
    this.built = true;
    this.label();
  }

  presetRange() {
    const days = Number($("#st-range", this.root).value);
    if (!days) return;
    const today = new Date();
    $("#st-since", this.root).value = isoDate(new Date(today.getTime() - (days - 1) * DAY_MS));
    $("#st-until", this.root).value = isoDate(today);
    this.load();
  }

  /** The query of the chosen period: whole local days, since the first to the end of the last. */
  query() {
    const since = localMidnight($("#st-since", this.root).value);
    const until = localMidnight($("#st-until", this.root).value);
    until.setDate(until.getDate() + 1);
    return new URLSearchParams({ since: since.toISOString(), until: until.toISOString(), utc_offset_min: String(-since.getTimezoneOffset()) });
  }

  async open() {
    if (!this.built) this.build();
    await this.load();
  }

  async load() {
    const status = $("#st-status", this.root);
    status.className = "status";
    status.textContent = t("st.loading");
    try {
      this.data = await api(`/stats/cases?${this.query()}`);
      status.textContent = this.data.truncated ? t("st.truncated") : "";
    } catch (e) {
      status.className = "status err";
      status.textContent = t("err.generic", { msg: e.message });
      return;
    }
    this.render();
    await this.charts_();
  }

  async export(kind) {
    const q = this.query();
    q.set("lang", lang);
    try {
      const r = await api(`/stats/cases.${kind}?${q}`, { raw: true });
      const name = /filename="([^"]+)"/.exec(r.headers.get("Content-Disposition") || "")?.[1] || `gridworker-stats.${kind}`;
      saveBlob(await r.blob(), name);
    } catch (e) {
      $("#st-status", this.root).textContent = t("err.generic", { msg: e.message });
    }
  }

  typeName(code) {
    const k = this.state.types.get(code);
    return k ? (lang === "zh" ? k.name_zh : k.name_en) : code;
  }

  unitName(code) {
    const u = this.state.units.find((x) => x.code === code);
    return u ? (lang === "zh" ? u.name_zh : u.name_en) : code;
  }

  label() {
    if (!this.built) return;
    const r = this.root;
    for (const o of $("#st-range", r).options) o.textContent = o.value === "custom" ? t("st.custom") : t("st.lastDays", { n: o.value });
    const tr = $("#st-trend", r);
    tr.options[0].textContent = t("st.perDay");
    tr.options[1].textContent = t("st.perWeek");
    $("#st-refresh", r).textContent = t("st.refresh");
    $("#st-csv", r).textContent = t("st.csv");
    $("#st-xlsx", r).textContent = t("st.xlsx");
    for (const h of r.querySelectorAll("[data-t]")) h.textContent = t(h.dataset.t);
  }

  /** Re-draw from the last answer (a language switch, a day/week switch). */
  render() {
    if (!this.built) return;
    this.label();
    const d = this.data;
    if (!d) return;
    const kpi = (key, label, value, text) => el("div", { class: "kpi", "data-kpi": key, "data-value": value ?? "" },
      el("span", { class: "label" }, label), el("b", {}, text));
    $("#st-kpis", this.root).replaceChildren(
      kpi("total", t("st.total"), d.totals.total, String(d.totals.total)),
      kpi("finished", t("st.finished"), d.totals.finished, String(d.totals.finished)),
      kpi("on_time_rate", t("st.onTimeRate"), d.totals.on_time_rate, fmtRate(d.totals.on_time_rate)),
      kpi("mean_handling", t("st.meanHandling"), d.totals.mean_handling_s, fmtMinutes(d.totals.mean_handling_s)),
      kpi("open", t("st.open"), openCount(d.by_state), String(openCount(d.by_state))),
    );
    this.table("#st-unit", d.by_unit, (k) => this.unitName(k));
    this.table("#st-person", d.by_person, (k) => d.person_names[k] || `#${k}`);
    this.table("#st-type", d.by_type, (k) => this.typeName(k));
    this.table("#st-site", d.by_site, (k) => k || "—");
    if (this.charts.length) this.charts_();
  }

  table(sel, groups, name) {
    const head = el("tr", {}, ...["st.col.name", "st.col.total", "st.col.finished", "st.col.onTime", "st.col.rate", "st.col.mean"].map((k) => el("th", {}, t(k))));
    const cell = (col, value, text) => el("td", { "data-col": col, "data-value": value ?? "" }, text);
    const rows = groups.map((g) => el("tr", { "data-key": g.key },
      el("td", { "data-col": "name" }, name(g.key)),
      cell("total", g.total, String(g.total)), cell("finished", g.finished, String(g.finished)),
      cell("on_time", g.on_time, `${g.on_time}/${g.judged}`),
      cell("on_time_rate", g.on_time_rate, fmtRate(g.on_time_rate)),
      cell("mean_handling_s", g.mean_handling_s, fmtMinutes(g.mean_handling_s))));
    $(sel, this.root).replaceChildren(head, ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "6", class: "hint" }, t("st.none")))]));
  }

  /** The trend over the whole chosen period: days (or weeks) without a case are there, with 0. */
  filled(weekly) {
    const d = this.data;
    const groups = weekly ? d.by_week : d.by_day;
    const have = new Map(groups.map((g) => [g.key, g]));
    let first = $("#st-since", this.root).value, last = $("#st-until", this.root).value;
    if (weekly) {
      const monday = localMidnight(first);
      monday.setDate(monday.getDate() - ((monday.getDay() + 6) % 7));
      first = isoDate(monday);
    }
    const keys = dates(first, last, weekly ? 7 : 1);
    if (keys.length > 400 || groups.some((g) => !keys.includes(g.key))) return groups;  // not the period on screen: as given
    return keys.map((k) => have.get(k) || { key: k, total: 0, finished: 0, judged: 0, on_time: 0, on_time_rate: null, mean_handling_s: null });
  }

  async charts_() {
    const d = this.data;
    if (!d) return;
    await loadScript(ECHARTS);
    const echarts = window.echarts;
    if (!this.charts.length) {
      this.charts = ["#st-chart-trend", "#st-chart-type", "#st-chart-state"].map((s) => echarts.init($(s, this.root), "dark", { renderer: "canvas" }));
      this.resize = new ResizeObserver(() => this.charts.forEach((c) => c.resize()));
      this.charts.forEach((c) => this.resize.observe(c.getDom()));
    }
    const [trendChart, typeChart, stateChart] = this.charts;
    const trend = this.filled($("#st-trend", this.root).value === "week");
    const base = { backgroundColor: "transparent", tooltip: { trigger: "axis", renderMode: "richText" }, textStyle: { fontSize: 13 } };
    trendChart.setOption({
      ...base,
      legend: { top: 0, data: [t("st.total"), t("st.finished"), t("st.onTimeRate")] },
      grid: { left: 48, right: 56, top: 40, bottom: 32 },
      xAxis: { type: "category", data: trend.map((g) => g.key) },
      yAxis: [{ type: "value", minInterval: 1 }, { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } }],
      series: [
        { name: t("st.total"), type: "bar", data: trend.map((g) => g.total) },
        { name: t("st.finished"), type: "bar", data: trend.map((g) => g.finished) },
        { name: t("st.onTimeRate"), type: "line", yAxisIndex: 1, connectNulls: true,
          data: trend.map((g) => (g.on_time_rate === null ? null : Math.round(1000 * g.on_time_rate) / 10)) },
      ],
    }, true);
    typeChart.setOption({
      ...base,
      grid: { left: 120, right: 24, top: 16, bottom: 24 },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", data: d.by_type.map((g) => this.typeName(g.key)).reverse() },
      series: [{ name: t("st.total"), type: "bar", data: d.by_type.map((g) => g.total).reverse() }],
    }, true);
    stateChart.setOption({
      ...base,
      tooltip: { trigger: "item", renderMode: "richText" },
      series: [{ name: t("st.byState"), type: "pie", radius: ["35%", "70%"],
        data: Object.entries(d.by_state).filter(([, n]) => n > 0).map(([s, n]) => ({ name: t(`state.${s}`), value: n })) }],
    }, true);
  }
}

/** Local dates from ``first`` to ``last`` (YYYY-MM-DD), every ``days`` days. */
function dates(first, last, days) {
  const out = [];
  for (let d = localMidnight(first); isoDate(d) <= last; d.setDate(d.getDate() + days)) out.push(isoDate(d));
  return out;
}

function openCount(byState) {
  return ["detected", "dispatched", "accepted", "escalated"].reduce((n, s) => n + (byState[s] || 0), 0);
}
