// The sentence table: time (seeks the player), original, editable translation, its speaker (a choice among the
// job's speakers, when they were told apart), speed factor.
// ``changes()`` lists only the rows whose translation or speaker differs from the current version, with only
// what changed.
import { t } from "./i18n/index.js";
import { el, formatClock } from "./format.js";
import { sentenceState } from "./timeline.js";
import { speakerClass } from "./speakers.js";

export class Editor {
  constructor(tbody, onInput, onSeek) {
    this.tbody = tbody;
    this.onInput = onInput;
    this.onSeek = onSeek;
    this.rows = [];
    this.labels = [];
    this.fields = new Map();
    this.speakers = new Map(); // sentence id -> <select> of its speaker
  }

  load(rows, labels = []) {
    this.rows = rows;
    this.labels = labels;
    this.fields.clear();
    this.speakers.clear();
    this.tbody.replaceChildren(...rows.map((row, i) => this.renderRow(row, i)));
  }

  speakerCell(row, i, tr) {
    if (!this.labels.length) return null;
    if (!row.speaker) return el("td", { "data-label": t("editor.speaker"), class: "speaker" }, "—");
    const swatch = el("span", { class: `swatch ${speakerClass(row.speaker, this.labels)}`, "aria-hidden": "true" });
    const select = el("select", { "aria-label": t("editor.speakerOf", { n: i + 1 }), dataset: { id: row.id }, class: "speaker-select" },
      ...this.labels.map((l) => el("option", { value: l }, l)));
    select.value = row.speaker;
    select.addEventListener("change", () => {
      swatch.className = `swatch ${speakerClass(select.value, this.labels)}`;
      tr.classList.toggle("changed", this.changed(row));
      this.onInput();
    });
    this.speakers.set(row.id, select);
    return el("td", { "data-label": t("editor.speaker"), class: "speaker" }, swatch, select);
  }

  renderRow(row, i) {
    const state = sentenceState(row);
    const area = el("textarea", { rows: "2", "aria-label": t("editor.translationOf", { n: i + 1 }), dataset: { id: row.id },
      lang: "", class: "translation" });
    area.value = row.translation;
    area.addEventListener("input", () => { tr.classList.toggle("changed", this.changed(row)); this.onInput(); });
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
      el("td", { "data-label": t("editor.translation") }, area));
    const who = this.speakerCell(row, i, tr);
    if (who) tr.append(who);
    tr.append(el("td", { "data-label": t("editor.speed"), class: "speed" }, speed, " ", notes));
    return tr;
  }

  textChanged(row) {
    return this.fields.get(row.id).value.trim().replace(/\s+/g, " ") !== row.translation;
  }

  speakerChanged(row) {
    const select = this.speakers.get(row.id);
    return Boolean(select && select.value !== row.speaker);
  }

  changed(row) {
    return this.textChanged(row) || this.speakerChanged(row);
  }

  changes() {
    return this.rows.filter((row) => this.changed(row)).map((row) => {
      const edit = { id: row.id };
      if (this.textChanged(row)) edit.translation = this.fields.get(row.id).value.trim();
      if (this.speakerChanged(row)) edit.speaker = this.speakers.get(row.id).value;
      return edit;
    });
  }

  reset() {
    for (const row of this.rows) {
      this.fields.get(row.id).value = row.translation;
      const select = this.speakers.get(row.id);
      if (select) { select.value = row.speaker; select.dispatchEvent(new Event("change")); }
    }
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
