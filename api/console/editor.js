// Zone editor: draw, move and delete polygons (zones, masks), counting lines, directed lanes,
// signal heads and the ground-plane calibration (four image points with their metres) on the
// camera's current frame; insert a vertex on an edge by dragging its midpoint. Rule forms come
// from the API's own OpenAPI schema (the pydantic rule configs), so every rule and parameter
// the service knows is offered.
import { api, objectUrl } from "./api.js";
import { el } from "./dom.js";
import { lang, t } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
const POLYGONS = ["zone", "mask", "lane", "signal"];  // shapes whose edges take a new vertex
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$/;
const round = (v, n = 4) => Math.round(v * 10 ** n) / 10 ** n;
const clamp01 = (v) => Math.min(1, Math.max(0, v));
const svgEl = (tag, attrs = {}) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};

/** The rule configs from /openapi.json: type → JSON schema of that rule. */
async function ruleSchemas() {
  const doc = await (await fetch("/openapi.json")).json();
  const all = doc.components.schemas;
  const deref = (s) => (s && s.$ref ? all[s.$ref.split("/").pop()] : s);
  for (const schema of Object.values(all)) {
    const mapping = schema.properties?.rules?.items?.discriminator?.mapping;
    if (mapping && mapping.intrusion) {
      const out = {};
      for (const [type, ref] of Object.entries(mapping)) out[type] = deref({ $ref: ref });
      return { rules: out, deref };
    }
  }
  throw new Error("rule schemas not found in /openapi.json");
}

export class Editor {
  constructor(root, app) {
    this.root = root;
    this.app = app;
    this.svg = root.querySelector("#ed-svg");
    this.img = root.querySelector("#ed-frame");
    this.props = root.querySelector("#ed-props");
    this.status = root.querySelector("#ed-status");
    this.shapes = [];
    this.sel = null;
    this.tool = "select";
    this.draft = null;
    this.drag = null;
    this.size = [1280, 720];
    this.apiSignals = [];  // signals without a region (pushed through the API): kept, listed, not drawn
    this.cam = null;
    this.schema = null;
    this.dirty = false;
    this.wire();
  }

  // -- loading ---------------------------------------------------------------------------
  async open() {
    this.schema ??= await ruleSchemas();
    const cams = await api("/cameras");
    const select = this.root.querySelector("#ed-camera");
    const current = this.cam?.id ?? select.value;
    select.replaceChildren(...cams.map((c) => el("option", { value: c.id }, c.name ? `${c.name} (${c.id})` : c.id)));
    if (!cams.length) return;
    select.value = cams.some((c) => c.id === current) ? current : cams[0].id;
    if (!this.cam || this.cam.id !== select.value) await this.load(select.value);
  }

  async load(id) {
    const seq = (this.loadSeq = (this.loadSeq || 0) + 1);  // a later load wins over one still running
    delete this.root.dataset.camera;
    const cam = await api(`/cameras/${encodeURIComponent(id)}`);
    if (seq !== this.loadSeq) return;
    this.cam = cam;
    await this.loadFrame();
    if (seq !== this.loadSeq) return;
    this.root.dataset.camera = id;  // ready (tests wait for it)
    this.shapes = this.fromScene(this.cam);
    this.sel = null;
    this.draft = null;
    this.setDirty(false);
    this.render();
  }

  async loadFrame() {
    try {
      const url = await objectUrl(`/cameras/${encodeURIComponent(this.cam.id)}/frame.jpg?t=${Date.now()}`);
      const old = this.img.src;
      this.img.src = url;
      await this.img.decode();
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      this.size = [this.img.naturalWidth, this.img.naturalHeight];
    } catch (e) {
      this.say(t("wall.noframe"), "err");
    }
    this.svg.setAttribute("viewBox", `0 0 ${this.size[0]} ${this.size[1]}`);
    this.svg.setAttribute("preserveAspectRatio", "none");
    this.render();
  }

  fromScene(cam) {
    const [W, H] = this.size;
    const shapes = [];
    for (const z of cam.zones) {
      const ww = z.rules.find((r) => r.type === "wrong_way");
      const shape = { kind: ww ? "lane" : "zone", id: z.id, name: z.name || "", points: z.polygon.map((p) => [...p]), rules: z.rules.map((r) => ({ ...r })) };
      if (ww) {
        const [cx, cy] = centroid(shape.points);
        let [dx, dy] = [ww.direction[0] / W, ww.direction[1] / H];
        const n = Math.hypot(dx, dy) || 1;
        [dx, dy] = [(0.08 * dx) / n, (0.08 * dy) / n];
        shape.arrow = [[clamp01(cx - dx), clamp01(cy - dy)], [clamp01(cx + dx), clamp01(cy + dy)]];
      }
      shapes.push(shape);
    }
    for (const m of cam.masks) {
      const { id, polygon, ...extra } = m;  // by, min_overlap, and any field added later: sent back as read
      shapes.push({ kind: "mask", id, name: "", points: polygon.map((p) => [...p]), rules: [], extra });
    }
    for (const l of cam.lines) {
      const { id, name, points, ...extra } = l;
      shapes.push({ kind: "line", id, name: name || "", points: points.map((p) => [...p]), extra });
    }
    this.apiSignals = [];
    for (const sg of cam.signals || []) {
      const { id, region, ...extra } = sg;
      if (region) shapes.push({ kind: "signal", id, name: "", points: region.map((p) => [...p]), extra });
      else this.apiSignals.push({ ...sg });
    }
    if (cam.calibration) {
      shapes.push({ kind: "calibration", id: "calibration", name: "", points: cam.calibration.image.map((p) => [...p]), ground: cam.calibration.ground.map((g) => [...g]) });
    }
    return shapes;
  }

  toScene() {
    const [W, H] = this.size;
    const zones = [], masks = [], lines = [], signals = [];
    let calibration = null;
    for (const s of this.shapes) {
      const points = s.points.map(([x, y]) => [round(x), round(y)]);
      if (s.kind === "mask") masks.push({ ...s.extra, id: s.id, polygon: points });
      else if (s.kind === "signal") signals.push({ ...s.extra, id: s.id, region: points });
      else if (s.kind === "calibration") calibration = { image: points, ground: s.ground.map((g) => g.map(Number)) };
      else if (s.kind === "line") lines.push({ ...s.extra, id: s.id, name: s.name || null, points });
      else {
        const rules = s.rules.map((r) => ({ ...r }));
        if (s.kind === "lane" && s.arrow) {
          const [[x0, y0], [x1, y1]] = s.arrow;
          const [dx, dy] = [(x1 - x0) * W, (y1 - y0) * H];
          const n = Math.hypot(dx, dy) || 1;
          let ww = rules.find((r) => r.type === "wrong_way");
          if (!ww) rules.push((ww = { type: "wrong_way" }));
          ww.direction = [round(dx / n, 3), round(dy / n, 3)];
        }
        zones.push({ id: s.id, name: s.name || null, polygon: points, rules });
      }
    }
    return { zones, masks, lines, signals: [...signals, ...this.apiSignals.map((sg) => ({ ...sg }))], calibration };
  }

  async save() {
    const bad = this.shapes.find((s) => s.kind !== "calibration" && !ID_RE.test(s.id));
    if (bad) return this.say(`${t("ed.id")}: "${bad.id}"`, "err");
    const cal = this.shapes.find((s) => s.kind === "calibration");
    if (cal && !cal.ground.every((g) => g.every((v) => v !== null && v !== "" && Number.isFinite(Number(v))))) {
      this.select(cal);
      return this.say(t("ed.calNeedsGround"), "err");
    }
    const scene = this.toScene();
    try {
      const res = await api(`/cameras/${encodeURIComponent(this.cam.id)}/scene`, { method: "PUT", body: scene });
      this.cam = res.camera;
      this.shapes = this.fromScene(this.cam);
      this.sel = this.sel && this.shapes.find((s) => s.id === this.sel.id) || null;
      this.setDirty(false);
      this.render();
      this.say(t(res.persisted ? "ed.saved" : "ed.savedTemp"), "ok");
      if (!res.persisted) {
        this.status.append(el("details", {}, el("summary", {}, "scene (YAML/JSON)"), el("pre", {}, JSON.stringify(scene))));
      }
      setTimeout(() => this.loadFrame(), 1200);  // the next analysed frame shows the new zones
    } catch (e) {
      this.say(t("err.generic", { msg: e.message }), "err");
    }
  }

  say(text, kind = "") {
    this.status.className = `status ${kind}`;
    this.status.textContent = text;
  }

  setDirty(d) {
    this.dirty = d;
    if (d) this.say(t("ed.unsaved"));
  }

  // -- input -----------------------------------------------------------------------------
  wire() {
    const r = this.root;
    r.querySelector("#ed-camera").addEventListener("change", (e) => { if (e.target.value !== this.cam?.id) this.load(e.target.value); });
    r.querySelector("#ed-refresh").addEventListener("click", () => this.loadFrame());
    r.querySelector("#ed-save").addEventListener("click", () => this.save());
    r.querySelector("#ed-revert").addEventListener("click", () => this.load(this.cam.id));
    r.querySelector("#ed-delete").addEventListener("click", () => this.deleteSelected());
    for (const b of r.querySelectorAll(".tool")) b.addEventListener("click", () => this.setTool(b.dataset.tool));
    this.svg.addEventListener("mousedown", (e) => this.onDown(e));
    window.addEventListener("mousemove", (e) => this.onMove(e));
    window.addEventListener("mouseup", () => this.onUp());
    this.svg.addEventListener("click", (e) => this.onClick(e));
    this.svg.addEventListener("dblclick", (e) => { e.preventDefault(); this.finish(); });
    this.svg.addEventListener("contextmenu", (e) => this.onContext(e));
    document.addEventListener("keydown", (e) => this.onKey(e));
  }

  point(e) {
    const rect = this.svg.getBoundingClientRect();
    return [round(clamp01((e.clientX - rect.left) / rect.width)), round(clamp01((e.clientY - rect.top) / rect.height))];
  }

  /** Distance in screen pixels between two normalised points. */
  screenDist(a, b) {
    const rect = this.svg.getBoundingClientRect();
    return Math.hypot((a[0] - b[0]) * rect.width, (a[1] - b[1]) * rect.height);
  }

  setTool(tool) {
    this.tool = tool;
    this.draft = null;
    for (const b of this.root.querySelectorAll(".tool")) b.classList.toggle("active", b.dataset.tool === tool);
    this.render();
  }

  onDown(e) {
    if (e.button !== 0) return;
    const h = e.target.dataset;
    if (h.mid !== undefined && !this.draft && this.sel) {  // a midpoint: a new vertex on that edge, dragged from there
      e.preventDefault();
      const i = Number(h.mid), pts = this.sel.points, next = pts[(i + 1) % pts.length];
      pts.splice(i + 1, 0, [round((pts[i][0] + next[0]) / 2), round((pts[i][1] + next[1]) / 2)]);
      this.suppressClick = true;
      this.drag = { shape: this.sel, which: String(i + 1), moved: true };
      this.setDirty(true);
      this.renderShapes();
      return;
    }
    if (h.handle !== undefined && !this.draft) {
      e.preventDefault();
      this.suppressClick = true;  // the click that ends this drag adds no point
      this.drag = { shape: this.sel, which: h.handle };
      return;
    }
    if (this.tool === "select") {
      const shape = this.shapes.find((s) => s.id === h.id && s.kind === h.kind) || null;
      this.select(shape);
    }
  }

  onMove(e) {
    if (this.drag) {
      const p = this.point(e);
      const { shape, which } = this.drag;
      if (which.startsWith("a")) shape.arrow[Number(which.slice(1))] = p;
      else shape.points[Number(which)] = p;
      this.drag.moved = true;
      this.renderShapes();
    } else if (this.draft) {
      this.draft.cursor = this.point(e);
      this.renderShapes();
    }
  }

  onUp() {
    if (this.drag?.moved) this.setDirty(true);
    // a drag that ended elsewhere fires no click: the suppression must not eat the next real click
    if (this.drag) setTimeout(() => { this.suppressClick = false; }, 0);
    this.drag = null;
  }

  onClick(e) {
    if (this.suppressClick) { this.suppressClick = false; return; }
    if (this.tool === "select" || e.detail > 1) return;  // the second click of a double-click finishes instead
    const p = this.point(e);
    if (!this.draft) {
      this.draft = { kind: this.tool, points: [p], cursor: p };
    } else if (this.draft.kind === "arrow" || this.draft.kind === "line") {
      this.draft.points.push(p);
      if (this.draft.points.length === 2) this.finish();
    } else if (this.draft.kind === "calibration") {
      this.draft.points.push(p);
      if (this.draft.points.length === 4) return this.finish();
    } else {
      const pts = this.draft.points;
      if (pts.length >= 3 && this.screenDist(p, pts[0]) < 12) return this.finish();
      pts.push(p);
    }
    this.renderShapes();
    this.hint();
  }

  onContext(e) {
    const h = e.target.dataset.handle;
    if (h === undefined || h.startsWith("a") || !this.sel || this.sel.kind === "line" || this.sel.kind === "calibration") return;
    e.preventDefault();
    if (this.sel.points.length > 3) {
      this.sel.points.splice(Number(h), 1);
      this.setDirty(true);
      this.renderShapes();
    }
  }

  onKey(e) {
    if (this.root.hidden || e.target.closest?.("input, textarea, select")) return;
    if (e.key === "Enter") this.finish();
    else if (e.key === "Escape") { this.draft = null; this.renderShapes(); this.hint(); }
    else if (e.key === "Delete" || e.key === "Backspace") { e.preventDefault(); this.deleteSelected(); }
    else if (!e.ctrlKey && !e.metaKey && !e.altKey) {
      const tool = { s: "select", p: "polygon", l: "line", d: "lane", g: "signal", c: "calibration" }[e.key.toLowerCase()];
      if (tool) this.setTool(tool);
    }
  }

  nextId(prefix) {
    for (let i = 1; ; i++) if (!this.shapes.some((s) => s.id === `${prefix}-${i}`)) return `${prefix}-${i}`;
  }

  finish() {
    const d = this.draft;
    if (!d) return;
    const pts = d.points.filter((p, i) => i === 0 || this.screenDist(p, d.points[i - 1]) > 3);
    if (d.kind === "line") {
      if (pts.length < 2) return;
      const shape = { kind: "line", id: this.nextId("line"), name: "", points: pts.slice(0, 2), extra: {} };
      this.shapes.push(shape);
      this.draft = null;
      this.select(shape);
    } else if (d.kind === "arrow") {
      if (pts.length < 2) return;
      d.shape.arrow = pts.slice(0, 2);
      this.draft = null;
      this.select(d.shape);
    } else if (d.kind === "calibration") {
      if (pts.length < 4) return;
      const old = this.shapes.find((s) => s.kind === "calibration");  // one per camera: a new one replaces it
      const shape = { kind: "calibration", id: "calibration", name: "", points: pts.slice(0, 4), ground: old ? old.ground.map((g) => [...g]) : [[null, null], [null, null], [null, null], [null, null]] };
      this.shapes = this.shapes.filter((s) => s !== old);
      this.shapes.push(shape);
      this.draft = null;
      this.select(shape);
    } else if (d.kind === "signal") {
      if (pts.length < 3) return;
      const taken = new Set([...this.shapes.filter((s) => s.kind === "signal").map((s) => s.id), ...this.apiSignals.map((sg) => sg.id)]);
      let n = 1;
      while (taken.has(`signal-${n}`)) n++;
      const shape = { kind: "signal", id: `signal-${n}`, name: "", points: pts, extra: { source: "image" } };
      this.shapes.push(shape);
      this.draft = null;
      this.select(shape);
    } else {
      if (pts.length < 3) return;
      const lane = d.kind === "lane";
      const shape = { kind: lane ? "lane" : "zone", id: this.nextId(lane ? "lane" : "zone"), name: "", points: pts, rules: lane ? [{ type: "wrong_way" }] : [] };
      this.shapes.push(shape);
      this.draft = lane ? { kind: "arrow", shape, points: [], cursor: null } : null;
      this.select(shape);
    }
    this.setDirty(true);
    this.hint();
  }

  deleteSelected() {
    if (!this.sel) return;
    this.shapes = this.shapes.filter((s) => s !== this.sel);
    this.sel = null;
    this.setDirty(true);
    this.render();
  }

  select(shape) {
    this.sel = shape;
    this.render();
  }

  // -- drawing ---------------------------------------------------------------------------
  hint() {
    const key = this.draft?.kind === "arrow" ? "ed.hint.arrow" : `ed.hint.${this.tool}`;  // (signal, calibration included)
    this.root.querySelector("#ed-hint").textContent = t(key);
  }

  render() {
    this.hint();
    this.renderShapes();
    this.renderProps();
  }

  renderShapes() {
    const [W, H] = this.size;
    const px = (p) => `${p[0] * W},${p[1] * H}`;
    const r = 0.011 * Math.max(W, H);
    const svg = this.svg;
    svg.replaceChildren();
    const defs = svgEl("defs");
    const marker = svgEl("marker", { id: "arrowhead", viewBox: "0 0 10 10", refX: "8", refY: "5", markerWidth: "5", markerHeight: "5", orient: "auto-start-reverse" });
    marker.append(svgEl("path", { d: "M0,0 L10,5 L0,10 z", fill: "#3ddc84" }));
    defs.append(marker);
    svg.append(defs);
    // the calibration quadrilateral lies under the other shapes (it is picked where nothing else is)
    for (const s of [...this.shapes].sort((a, b) => (b.kind === "calibration") - (a.kind === "calibration"))) {
      const cls = `shape ${s.kind}${s === this.sel ? " selected" : ""}`;
      const node = s.kind === "line"
        ? svgEl("polyline", { points: s.points.map(px).join(" "), class: cls, "data-id": s.id, "data-kind": s.kind })
        : svgEl("polygon", { points: s.points.map(px).join(" "), class: cls, "data-id": s.id, "data-kind": s.kind });
      svg.append(node);
      if (s.kind === "calibration") {
        s.points.forEach((p, i) => {
          const n = svgEl("text", { x: p[0] * W, y: p[1] * H - r * 1.4, "font-size": r * 2, "text-anchor": "middle", class: "calnum" });
          n.textContent = String(i + 1);
          svg.append(n);
        });
      }
      if (s.kind === "lane" && s.arrow) {
        svg.append(svgEl("line", { x1: s.arrow[0][0] * W, y1: s.arrow[0][1] * H, x2: s.arrow[1][0] * W, y2: s.arrow[1][1] * H, class: "arrow", "data-id": s.id }));
      }
      const [lx, ly] = s.kind === "line" ? s.points[0] : centroid(s.points);
      const label = svgEl("text", { x: lx * W, y: ly * H, "font-size": r * 2.2, "text-anchor": "middle" });
      label.textContent = s.kind === "calibration" ? t("ed.kind.calibration") : s.id;
      svg.append(label);
    }
    if (this.sel) {
      if (POLYGONS.includes(this.sel.kind) && !this.draft) {  // midpoints: drag one to insert a vertex on that edge
        const pts = this.sel.points;
        pts.forEach((p, i) => {
          const q = pts[(i + 1) % pts.length];
          svg.append(svgEl("circle", { cx: ((p[0] + q[0]) / 2) * W, cy: ((p[1] + q[1]) / 2) * H, r: r * 0.6, class: "mid", "data-mid": String(i) }));
        });
      }
      this.sel.points.forEach((p, i) => svg.append(svgEl("circle", { cx: p[0] * W, cy: p[1] * H, r, class: "handle", "data-handle": String(i) })));
      (this.sel.arrow || []).forEach((p, i) => svg.append(svgEl("circle", { cx: p[0] * W, cy: p[1] * H, r: r * 0.8, class: "handle", "data-handle": `a${i}` })));
    }
    if (this.draft) {
      const pts = [...this.draft.points, ...(this.draft.cursor ? [this.draft.cursor] : [])];
      svg.append(svgEl("polyline", { points: pts.map(px).join(" "), class: "draft" }));
      this.draft.points.forEach((p) => svg.append(svgEl("circle", { cx: p[0] * W, cy: p[1] * H, r: r * 0.6, class: "handle" })));
    }
  }

  // -- the properties form ---------------------------------------------------------------
  renderProps() {
    const form = this.props;
    const s = this.sel;
    if (!s) return form.replaceChildren(el("p", { class: "hint" }, t("ed.nothing")), ...this.apiSignalsPanel());
    if (s.kind === "calibration") return form.replaceChildren(...this.calibrationPanel(s));
    const kids = [];
    const polygonKinds = ["zone", "mask"];
    if (polygonKinds.includes(s.kind)) {
      kids.push(el("label", {}, t("ed.kind"), el("select", {
        name: "kind", onchange: (e) => { s.kind = e.target.value; if (s.kind === "mask") s.rules = []; this.setDirty(true); this.render(); },
      }, ...polygonKinds.map((k) => el("option", { value: k, selected: k === s.kind }, t(`ed.kind.${k}`))))));
    } else kids.push(el("p", {}, `${t("ed.kind")}: ${t(`ed.kind.${s.kind}`)}`));
    kids.push(el("label", {}, t("ed.id"), el("input", {
      name: "id", value: s.id, pattern: ID_RE.source, required: true,
      oninput: (e) => { s.id = e.target.value.trim(); this.setDirty(true); this.renderShapes(); },
    })));
    if (s.kind !== "mask" && s.kind !== "signal") {
      kids.push(el("label", {}, t("ed.name"), el("input", { name: "name", value: s.name, oninput: (e) => { s.name = e.target.value; this.setDirty(true); } })));
    }
    if (s.kind === "signal") kids.push(...this.signalFields(s));
    if (s.kind === "line") {
      kids.push(el("label", {}, t("ed.classes"), el("input", {
        name: "classes", value: (s.extra.classes || []).join(", "), placeholder: "person, bicycle, car, bus, truck, motorcycle",
        onchange: (e) => { const v = splitList(e.target.value); if (v.length) s.extra.classes = v; else delete s.extra.classes; this.setDirty(true); },
      })));
    }
    if (s.kind === "zone" || s.kind === "lane") {
      kids.push(el("h3", {}, t("ed.rules")));
      s.rules.forEach((rule, i) => kids.push(this.ruleFieldset(s, rule, i)));
      const types = Object.keys(this.schema.rules);
      const pick = el("select", { name: "add-rule-type" }, ...types.map((ty) => el("option", { value: ty }, ruleLabel(ty, this.app))));
      kids.push(el("div", { class: "actions" }, pick, el("button", {
        type: "button", name: "add-rule",
        onclick: () => { s.rules.push({ type: pick.value }); this.setDirty(true); this.renderProps(); },
      }, t("ed.addRule"))));
    }
    form.replaceChildren(...kids);
  }

  /** A signal head: where it reads the lamp (the polygon), or pushed through the API; its timings. */
  signalFields(s) {
    const num = (name, min, max) => el("label", { title: name }, name, el("input", {
      type: "number", name, step: "any", min, max, value: s.extra[name] ?? "", placeholder: { stale_after_s: "5", hold_s: "1" }[name],
      oninput: (e) => { if (e.target.value === "") delete s.extra[name]; else s.extra[name] = Number(e.target.value); this.setDirty(true); },
    }));
    return [
      el("p", { class: "hint" }, t("ed.signalHint")),
      el("label", {}, t("ed.source"), el("select", {
        name: "source", onchange: (e) => { s.extra.source = e.target.value; this.setDirty(true); },
      }, ...["image", "api"].map((v) => el("option", { value: v, selected: (s.extra.source || "image") === v }, t(`ed.source.${v}`))))),
      num("stale_after_s", "0", "3600"),
      num("hold_s", "0", "60"),
    ];
  }

  /** The calibration: the four image points (drawn) and where each lies on the ground, metres. */
  calibrationPanel(s) {
    const rows = s.points.map((p, i) => el("tr", { "data-point": String(i) },
      el("td", {}, String(i + 1)),
      el("td", { class: "xy" }, `${p[0].toFixed(3)}, ${p[1].toFixed(3)}`),
      ...[0, 1].map((axis) => el("td", {}, el("input", {
        type: "number", step: "any", name: `ground-${i}-${"xy"[axis]}`, value: s.ground[i][axis] ?? "", required: true,
        oninput: (e) => { s.ground[i][axis] = e.target.value === "" ? null : Number(e.target.value); this.setDirty(true); },
      })))));
    return [
      el("p", {}, `${t("ed.kind")}: ${t("ed.kind.calibration")}`),
      el("p", { class: "hint" }, t("ed.calHint")),
      el("table", { class: "cal" }, el("tr", {}, ...["#", "ed.image", "ed.groundX", "ed.groundY"].map((k) => el("th", {}, k === "#" ? k : t(k)))), ...rows),
      el("button", { type: "button", name: "remove-calibration", class: "danger", onclick: () => this.deleteSelected() }, t("ed.removeCal")),
    ];
  }

  /** Signals pushed through the API have no region to draw: listed here, removable, and new ones added by id. */
  apiSignalsPanel() {
    const id = el("input", { name: "api-signal-id", placeholder: "signal id", pattern: ID_RE.source });
    const add = () => {
      const v = id.value.trim();
      const taken = this.apiSignals.some((sg) => sg.id === v) || this.shapes.some((s) => s.kind === "signal" && s.id === v);
      if (!ID_RE.test(v) || taken) { id.setCustomValidity(t("ed.id")); id.reportValidity(); return; }
      this.apiSignals.push({ id: v, source: "api" });
      this.setDirty(true);
      this.renderProps();
    };
    return [
      el("h3", {}, t("ed.apiSignals")),
      el("ul", { class: "api-signals" }, ...this.apiSignals.map((sg, i) => el("li", { "data-signal": sg.id }, `${sg.id} `,
        el("button", { type: "button", class: "danger", onclick: () => { this.apiSignals.splice(i, 1); this.setDirty(true); this.renderProps(); } }, t("ed.removeRule"))))),
      el("div", { class: "actions" }, id, el("button", { type: "button", name: "add-api-signal", onclick: add }, t("ed.addApiSignal"))),
    ];
  }

  ruleFieldset(shape, rule, index) {
    const schema = this.schema.rules[rule.type];
    const fs = el("fieldset", { "data-rule": rule.type },
      el("legend", {}, ruleLabel(rule.type, this.app), " ",
        el("button", { type: "button", class: "danger", onclick: () => { shape.rules.splice(index, 1); this.setDirty(true); this.renderProps(); } }, t("ed.removeRule"))));
    if (!schema) return fs;
    const required = new Set(schema.required || []);
    for (const [name, prop] of Object.entries(schema.properties)) {
      if (name === "type") continue;
      if (name === "direction" && shape.kind === "lane") {
        fs.append(el("p", { class: "hint" }, `${t("ed.direction")}: ${rule.direction ? rule.direction.join(", ") : "→"}`));
        continue;
      }
      fs.append(this.field(rule, name, prop, required.has(name)));
    }
    return fs;
  }

  field(rule, name, prop, required) {
    let p = prop;
    if (p.anyOf) {
      const inner = p.anyOf.filter((x) => x.type !== "null");
      p = inner.length === 1 ? { ...this.schema.deref(inner[0]), description: prop.description, default: prop.default } : { json: true };
    }
    const label = el("label", { title: prop.description || "" }, el("span", { class: required ? "req" : "" }, name));
    const changed = () => this.setDirty(true);
    const set = (v) => { if (v === undefined) delete rule[name]; else rule[name] = v; changed(); };
    const placeholder = prop.default === undefined || prop.default === null ? "" : JSON.stringify(prop.default);
    let input;
    if (p.type === "number" || p.type === "integer") {
      input = el("input", {
        type: "number", name, step: p.type === "integer" ? "1" : "any", min: p.minimum ?? p.exclusiveMinimum, max: p.maximum ?? p.exclusiveMaximum,
        value: rule[name] ?? "", placeholder,
        oninput: (e) => set(e.target.value === "" ? undefined : Number(e.target.value)),
      });
    } else if (p.type === "boolean") {
      label.className = "inline";
      input = el("input", { type: "checkbox", name, checked: rule[name] ?? p.default ?? false, onchange: (e) => set(e.target.checked) });
    } else if (p.type === "string" && p.enum) {
      input = el("select", { name, onchange: (e) => set(e.target.value || undefined) },
        el("option", { value: "" }, placeholder ? `(${JSON.parse(placeholder)})` : ""),
        ...p.enum.map((v) => el("option", { value: v, selected: rule[name] === v }, v)));
    } else if (p.type === "string") {
      input = el("input", { name, value: rule[name] ?? "", placeholder, pattern: p.pattern, oninput: (e) => set(e.target.value.trim() || undefined) });
    } else if (p.type === "array" && this.schema.deref(p.items)?.type === "string") {
      input = el("input", {
        name, value: (rule[name] ?? []).join(", "), placeholder: (prop.default || []).join(", "),
        onchange: (e) => { const v = splitList(e.target.value); set(v.length ? v : undefined); },
      });
    } else {
      input = el("textarea", {
        name, placeholder,
        onchange: (e) => {
          const txt = e.target.value.trim();
          if (!txt) return set(undefined);
          try { set(JSON.parse(txt)); e.target.setCustomValidity(""); } catch { e.target.setCustomValidity("JSON"); e.target.reportValidity(); }
        },
      });
      input.value = rule[name] === undefined || rule[name] === null ? "" : JSON.stringify(rule[name]);
    }
    label.append(input);
    return label;
  }
}

function centroid(points) {
  const n = points.length || 1;
  return [points.reduce((a, p) => a + p[0], 0) / n, points.reduce((a, p) => a + p[1], 0) / n];
}

function splitList(text) {
  return text.split(/[,，\s]+/).map((s) => s.trim()).filter(Boolean);
}

function ruleLabel(type, app) {
  const k = app.types.get(type);
  return k ? `${lang === "zh" ? k.name_zh : k.name_en} · ${type}` : type;
}
