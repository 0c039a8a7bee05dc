// The sentence table: time (seeks the player), original, editable translation, speed factor.
// ``changes()`` lists only the rows whose translation differs from the current version.
import { t } from "./i18n/index.js";
import { el, formatClock } from "./format.js";
import { sentenceState } from "./timeline.js";

export class Editor {
  constructor(tbody, onInput, onSeek) {
    this.tbody = tbody;
    this.onInput = onInput;
    this.onSeek = onSeek;
    this.rows = [];
    this.fields = new Map();
  }

  load(rows) {
    this.rows = rows;
    this.fields.clear();
    this.tbody.replaceChildren(...rows.map((row, i) => this.renderRow(row, i)));
  }

  renderRow(row, i) {
    const state = sentenceState(row);
    const area = el("textarea", { rows: "2", "aria-label": t("editor.translationOf", { n: i + 1 }), dataset: { id: row.id },
      lang: "", class: "translation" });
    area.value = row.translation;
    area.addEventListener("input", () => { tr.classList.toggle("changed", this.changed(row, area)); this.onInput(); });
    this.fields.set(row.id, area);
    const speed = row.speed == null ? "—" : `${row.speed.toFixed(2)}×`;
    const notes = [];
    if (state === "sped") notes.push(el("span", { class: "flag flag-sped" }, t("editor.spedUp")));
    if (state === "overflow") notes.push(el("span", { class: "flag flag-overflow" }, t("editor.overflow", { s: row.overflow_s.toFixed(1) })));
    const tr = el("tr", { dataset: { id: row.id }, class: `row-${state}` },
      el("td", { "data-label": t("editor.time") },
        el("button", { type: "button", class: "link", "aria-label": t("editor.seek", { time: formatClock(row.start_s) }),
          onclick: () => this.onSeek(row) }, `${formatClock(row.start_s)}–${formatClock(row.end_s)}`)),
      el("td", { "data-label": t("editor.source"), class: "source" }, row.source),
      el("td", { "data-label": t("editor.translation") }, area),
      el("td", { "data-label": t("editor.speed"), class: "speed" }, speed, " ", notes));
    return tr;
  }

  changed(row, area) {
    return area.value.trim().replace(/\s+/g, " ") !== row.translation;
  }

  changes() {
    return this.rows.filter((row) => this.changed(row, this.fields.get(row.id)))
      .map((row) => ({ id: row.id, translation: this.fields.get(row.id).value.trim() }));
  }

  reset() {
    for (const row of this.rows) this.fields.get(row.id).value = row.translation;
    for (const tr of this.tbody.querySelectorAll("tr.changed")) tr.classList.remove("changed");
    this.onInput();
  }

  setLanguage(code) {
    for (const area of this.fields.values()) area.lang = code;
  }

  focusRow(id) {
    this.fields.get(id)?.focus();
  }
}
