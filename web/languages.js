// The language pickers: a <select> for the spoken language and a searchable list of checkboxes for the
// target languages, with the picked ones shown as removable chips.
import { t, uiLanguage } from "./i18n/index.js";
import { el } from "./format.js";

export let languageNames = {};

// Names in the interface language where the browser knows them (Intl), else the server's English names;
// search matches both and the code.
export function setLanguages(list) {
  let local = null;
  try { local = uiLanguage === "en" ? null : new Intl.DisplayNames([uiLanguage], { type: "language" }); } catch { /* old browser */ }
  for (const lang of list) {
    const name = local?.of(lang.code);
    lang.search = `${lang.name} ${name || ""} ${lang.code}`.toLowerCase();
    if (name && name !== lang.code) lang.name = name.charAt(0).toUpperCase() + name.slice(1);
  }
  list.sort((a, b) => a.name.localeCompare(b.name, uiLanguage));
  languageNames = Object.fromEntries(list.map((l) => [l.code, l.name]));
}

export function languageName(code) {
  return languageNames[code] || code;
}

export function fillSourceSelect(select, list) {
  select.replaceChildren(el("option", { value: "" }, t("source.auto")),
    ...list.map((l) => el("option", { value: l.code }, `${l.name} (${l.code})`)));
}

export class TargetPicker {
  constructor({ list, search, chips, empty }, languages, initial = [], onChange = () => {}) {
    this.onChange = onChange; // called with the picked codes after every change
    this.listEl = list;
    this.searchEl = search;
    this.chipsEl = chips;
    this.emptyEl = empty;
    this.picked = new Set(initial);
    this.boxes = new Map();
    for (const lang of languages) {
      const box = el("input", { type: "checkbox", value: lang.code, id: `target-${lang.code}`, name: "target" });
      box.checked = this.picked.has(lang.code);
      box.addEventListener("change", () => this.toggle(lang.code, box.checked));
      const label = el("label", { for: box.id, class: "lang-option", dataset: { search: lang.search || `${lang.name} ${lang.code}`.toLowerCase() } },
        box, el("span", {}, lang.name), el("span", { class: "code" }, lang.code));
      this.boxes.set(lang.code, { box, label });
      this.listEl.append(label);
    }
    this.searchEl.addEventListener("input", () => this.filter());
    this.searchEl.addEventListener("keydown", (e) => {
      if (e.key !== "Enter") return;
      e.preventDefault(); // Enter picks the first match instead of submitting the form
      const first = [...this.boxes.values()].find((b) => !b.label.hidden);
      if (first) { this.toggle(first.box.value, true); this.searchEl.select(); }
    });
    this.renderChips();
  }

  filter() {
    const query = this.searchEl.value.trim().toLowerCase();
    let shown = 0;
    for (const { label } of this.boxes.values()) {
      label.hidden = Boolean(query) && !label.dataset.search.includes(query);
      if (!label.hidden) shown += 1;
    }
    this.emptyEl.hidden = shown > 0;
    this.emptyEl.textContent = t("targets.none", { query: this.searchEl.value.trim() });
  }

  toggle(code, on) {
    if (on) this.picked.add(code); else this.picked.delete(code);
    const entry = this.boxes.get(code);
    if (entry) entry.box.checked = on;
    this.renderChips();
    this.onChange(this.values);
  }

  renderChips() {
    const chips = [...this.picked].map((code) => el("li", { class: "chip" }, languageName(code),
      el("button", { type: "button", class: "chip-remove", "aria-label": t("targets.remove", { name: languageName(code) }),
        onclick: () => this.toggle(code, false) }, "×")));
    this.chipsEl.replaceChildren(...(chips.length ? chips : [el("li", { class: "muted" }, t("targets.nonePicked"))]));
  }

  // After a form reset: the picked languages stay picked (the next video likely wants the same ones).
  sync() {
    for (const [code, { box }] of this.boxes) box.checked = this.picked.has(code);
    this.filter();
  }

  get values() { return [...this.picked]; }
}
