// The map (地图): open cases as markers coloured by grade and state (clustered when dense), the
// cameras and their state, the grid areas and the sites' outlines; a click on a case opens it.
// Everything comes from GET /map, positions already in the basemap's coordinates. The basemap
// is the configured tile server (console.map.tiles_url); without one, a plain degree grid drawn
// on canvases (no image is fetched from anywhere). Leaflet and leaflet.markercluster are
// vendored (vendor/), loaded on first use.
import { api } from "./api.js";
import { $, el } from "./dom.js";
import { lang, t } from "./i18n.js";
import { loadScript, loadStyle } from "./lazy.js";

const REFRESH_MS = 20_000;
const STEPS = [30, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001];
const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

async function leaflet() {
  await Promise.all([loadStyle("vendor/leaflet/leaflet.css"), loadStyle("vendor/leaflet.markercluster/MarkerCluster.css"),
    loadStyle("vendor/leaflet.markercluster/MarkerCluster.Default.css")]);
  await loadScript("vendor/leaflet/leaflet.js");
  await loadScript("vendor/leaflet.markercluster/leaflet.markercluster.js");
  return window.L;
}

/** A layer of canvas tiles with a line every ``step`` degrees (the step follows the zoom). */
function degreeGrid(L) {
  return L.GridLayer.extend({
    createTile(coords) {
      const size = this.getTileSize();
      const canvas = L.DomUtil.create("canvas", "grid-tile");
      canvas.width = size.x;
      canvas.height = size.y;
      const ctx = canvas.getContext("2d");
      const map = this._map;
      const nw = coords.scaleBy(size);
      const at = (x, y) => map.unproject([nw.x + x, nw.y + y], coords.z);
      const a = at(0, 0), b = at(size.x, size.y);
      const span = 360 / 2 ** coords.z;
      const step = STEPS.find((s) => s <= span / 2) ?? STEPS[STEPS.length - 1];
      ctx.fillStyle = "#0f1722";
      ctx.fillRect(0, 0, size.x, size.y);
      ctx.strokeStyle = "#2a3644";
      ctx.fillStyle = "#5d6f83";
      ctx.font = "11px sans-serif";
      ctx.lineWidth = 1;
      for (let lon = Math.ceil(a.lng / step) * step; lon <= b.lng; lon += step) {
        const x = map.project([a.lat, lon], coords.z).x - nw.x;
        ctx.beginPath(); ctx.moveTo(x + 0.5, 0); ctx.lineTo(x + 0.5, size.y); ctx.stroke();
        ctx.fillText(`${+lon.toFixed(4)}°`, x + 3, 12);
      }
      for (let lat = Math.ceil(b.lat / step) * step; lat <= a.lat; lat += step) {
        const y = map.project([lat, a.lng], coords.z).y - nw.y;
        ctx.beginPath(); ctx.moveTo(0, y + 0.5); ctx.lineTo(size.x, y + 0.5); ctx.stroke();
        ctx.fillText(`${+lat.toFixed(4)}°`, 3, y - 3);
      }
      return canvas;
    },
  });
}

export class MapView {
  constructor(root, state, openCase) {
    this.root = root;
    this.state = state;  // the console's state: types
    this.openCase = openCase;
    this.map = null;
    this.data = null;
    this.timer = null;
  }

  build() {
    const toggle = (id, key) => el("label", { class: "inline" },
      el("input", { type: "checkbox", id, checked: true, onchange: () => this.layers() }), el("span", { "data-t": key }));
    this.root.replaceChildren(
      el("div", { class: "map-tools" },
        toggle("map-show-cases", "map.cases"), toggle("map-show-cameras", "map.cameras"), toggle("map-show-areas", "map.areas"),
        el("span", { class: "spacer" }), el("span", { id: "map-count", class: "hint" }), el("span", { id: "map-plain", class: "hint", hidden: true })),
      el("div", { id: "map-canvas", class: "map-canvas" }),
    );
    this.label();
  }

  label() {
    for (const h of this.root.querySelectorAll("[data-t]")) h.textContent = t(h.dataset.t);
  }

  async open() {
    if (!this.map) {
      this.build();
      this.L = await leaflet();
    }
    await this.load();
    this.timer ??= setInterval(() => { if (!this.root.hidden) this.load().catch(console.warn); }, REFRESH_MS);
  }

  async load() {
    this.data = await api("/map");
    if (!this.map) this.create();
    this.draw();
  }

  create() {
    const L = this.L, b = this.data.basemap;
    const map = L.map($("#map-canvas", this.root), { minZoom: b.min_zoom, maxZoom: b.max_zoom, worldCopyJump: true });
    map.attributionControl.setPrefix(false);
    if (b.tiles_url) {
      L.tileLayer(b.tiles_url, { minZoom: b.min_zoom, maxZoom: b.max_zoom, attribution: escapeHtml(b.attribution || ""), className: "basemap" }).addTo(map);
    } else {
      new (degreeGrid(L))({ minZoom: b.min_zoom, maxZoom: b.max_zoom, className: "plain-grid" }).addTo(map);
      map.getContainer().classList.add("plain");
    }
    this.map = map;
    this.groups = {
      areas: L.featureGroup().addTo(map),
      cameras: L.featureGroup().addTo(map),
      cases: L.markerClusterGroup({ maxClusterRadius: 40, showCoverageOnHover: false, spiderfyOnMaxZoom: true }).addTo(map),
    };
    this.fitted = false;
  }

  draw() {
    const L = this.L, d = this.data, g = this.groups;
    const ll = (p) => [p.lat, p.lon];
    const tip = (text) => el("span", {}, text);  // an element, not HTML: names from the config stay text
    Object.values(g).forEach((layer) => layer.clearLayers());
    for (const a of d.areas) {
      L.polygon(a.polygon.map(ll), { className: "area-outline", weight: 2, fillOpacity: 0.06 }).bindTooltip(tip(a.name || a.id), { sticky: true }).addTo(g.areas);
    }
    for (const s of d.sites) {
      L.rectangle([ll(s.south_west), ll(s.north_east)], { className: "site-outline", weight: 1, dashArray: "4 4", fillOpacity: 0 })
        .bindTooltip(tip(s.site), { sticky: true }).addTo(g.areas);
    }
    for (const c of d.cameras) {
      const alert = c.open_incident_types.length > 0;
      const m = L.marker(ll(c.position), {
        icon: L.divIcon({ className: `cam-marker cam-${c.state}${alert ? " alert" : ""}`, iconSize: [16, 16] }),
        title: `${c.name || c.id} · ${c.state}`, keyboard: false,
      });
      m.on("add", () => { m.getElement().dataset.camera = c.id; m.getElement().dataset.state = c.state; });
      m.bindTooltip(tip(`${c.name || c.id} (${c.id}) · ${t(`health.${c.state === "live" ? "live" : c.patrol_only ? "standby" : "offline"}`)}`));
      m.addTo(g.cameras);
    }
    for (const o of d.cases) {
      const name = this.typeName(o.type);
      const m = L.marker(ll(o.position), {
        icon: L.divIcon({ className: `case-marker g${o.grade} s-${o.state}${o.overdue ? " overdue" : ""}`, iconSize: [18, 18] }),
        title: `#${o.incident_id} ${name} · ${t(`state.${o.state}`)}`,
      });
      m.on("add", () => { const e = m.getElement(); e.dataset.incident = o.incident_id; e.dataset.grade = o.grade; e.dataset.state = o.state; });
      m.on("click", () => this.openCase(o.incident_id));
      g.cases.addLayer(m);
    }
    this.layers();
    $("#map-count", this.root).textContent = t("map.count", { cases: d.cases.length, cameras: d.cameras.length });
    const plain = $("#map-plain", this.root);
    plain.hidden = Boolean(d.basemap.tiles_url);
    plain.textContent = t("map.plain");
    if (!this.fitted) this.fit();
    this.map.invalidateSize();
  }

  fit() {
    const L = this.L, bounds = L.latLngBounds([]);
    for (const layer of Object.values(this.groups)) {
      const b = layer.getBounds();
      if (b.isValid()) bounds.extend(b);
    }
    if (bounds.isValid()) {
      this.map.fitBounds(bounds.pad(0.15), { maxZoom: 17 });
      this.fitted = true;
    } else {
      this.map.setView([30, 115], 4);
      $("#map-count", this.root).textContent = t("map.nothing");
    }
  }

  layers() {
    if (!this.map) return;
    for (const [name, layer] of Object.entries(this.groups)) {
      const on = $(`#map-show-${name}`, this.root).checked;
      if (on && !this.map.hasLayer(layer)) layer.addTo(this.map);
      if (!on && this.map.hasLayer(layer)) this.map.removeLayer(layer);
    }
  }

  typeName(code) {
    const k = this.state.types.get(code);
    return k ? (lang === "zh" ? k.name_zh : k.name_en) : code;
  }

  /** Labels after a language switch. */
  render() {
    this.label();
    if (this.data && this.map) this.draw();
  }
}
