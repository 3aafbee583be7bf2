// People (人员, admins only): the staff who handle cases, a form to add one, a CSV import, and
// disabling (GET/POST/PATCH /people, POST /people/import; docs/people.md).
import { api } from "./api.js";
import { el } from "./dom.js";
import { t } from "./i18n.js";

const ROLES = ["unit_handler", "supervisor", "operator", "viewer", "admin"];

export class PeopleView {
  constructor(root, state) {
    this.root = root;
    this.state = state;  // the console's state: units
    this.items = [];
    this.message = "";
  }

  async open() {
    this.items = (await api("/people?limit=500")).items;
    this.render();
  }

  render() {
    const input = (name, attrs = {}) => el("input", { name, ...attrs });
    const unit = el("select", { name: "unit" }, el("option", { value: "" }, "—"),
      ...(this.state.units || []).map((u) => el("option", { value: u.code }, u.code)));
    const role = el("select", { name: "role" }, ...ROLES.map((r) => el("option", { value: r }, r)));
    const form = el("form", { id: "pp-form", class: "people-form", onsubmit: (ev) => { ev.preventDefault(); this.add(ev.target).catch((e) => this.say(e.message)); } },
      input("username", { required: true, maxlength: "64", placeholder: t("pp.username") }),
      input("name", { required: true, maxlength: "200", placeholder: t("pp.name") }),
      unit, input("area", { maxlength: "64", placeholder: t("pp.area") }), input("phone", { maxlength: "32", placeholder: t("pp.phone") }), role,
      input("password", { type: "password", autocomplete: "new-password", minlength: "10", maxlength: "200", placeholder: t("pp.password") }),
      el("button", { type: "submit", class: "primary" }, t("pp.add")));
    const csv = el("input", { id: "pp-csv", type: "file", accept: ".csv,text/csv", onchange: (ev) => this.importCsv(ev.target).catch((e) => this.say(e.message)) });
    const rows = this.items.map((p) => el("tr", { "data-person": p.id, "data-disabled": p.disabled ? "1" : "0" },
      el("td", {}, p.username), el("td", {}, p.name), el("td", {}, p.unit), el("td", {}, p.area), el("td", {}, p.phone), el("td", {}, p.role),
      el("td", {}, el("button", { "data-toggle": p.id, onclick: () => this.toggle(p).catch((e) => this.say(e.message)) },
        t(p.disabled ? "pp.enable" : "pp.disable")))));
    this.root.replaceChildren(
      el("h2", {}, t("tab.people")), form,
      el("label", { class: "people-import" }, t("pp.import"), " ", csv),
      el("p", { id: "pp-msg", class: "hint" }, this.message),
      el("table", { id: "pp-table", class: "audit" },
        el("thead", {}, el("tr", {}, ...["pp.username", "pp.name", "pp.unit", "pp.area", "pp.phone", "pp.role", ""].map((k) => el("th", {}, k ? t(k) : "")))),
        el("tbody", {}, ...rows)));
  }

  say(message) {
    this.message = message;
    const p = this.root.querySelector("#pp-msg");
    if (p) p.textContent = message;
  }

  async add(form) {
    const body = Object.fromEntries([...new FormData(form).entries()].filter(([, v]) => v !== ""));
    const p = await api("/people", { method: "POST", body });
    this.message = t("pp.added", { name: p.username });
    await this.open();
  }

  async importCsv(fileInput) {
    const file = fileInput.files[0];
    if (!file) return;
    const r = await api("/people/import", { method: "POST", text: await file.text(), type: "text/csv" });
    this.message = t("pp.imported", { n: r.imported });
    await this.open();
  }

  async toggle(person) {
    await api(`/people/${person.id}`, { method: "PATCH", body: { disabled: !person.disabled } });
    await this.open();
  }
}
