// Who speaks: a stable colour per speaker of the report (S1, S2, ... in the report's order, so a speaker keeps
// its colour across versions), always shown with the speaker's label (never colour alone), and the voice of
// each speaker, chosen among the catalog voices of the target language (GET /v1/voices, through voices.js).
// ``changes()`` lists only the speakers whose voice differs from the current version.
import { t } from "./i18n/index.js";
import { el } from "./format.js";
import { voiceCatalog, voiceOptionLabel } from "./voices.js";

export const PALETTE_SIZE = 8; // .spk-0 … .spk-7 in style.css

// The report's speakers (labels, in its order); empty when the job's speakers were not told apart.
export function speakerLabels(report) {
  return (report.speakers?.speakers || []).map((s) => s.id);
}

export function speakerClass(label, labels) {
  const i = labels.indexOf(label);
  return i < 0 ? "" : `spk-${i % PALETTE_SIZE}`;
}

// A coloured swatch with the label beside it.
export function speakerTag(label, labels) {
  return el("span", { class: "speaker-tag" }, el("span", { class: `swatch ${speakerClass(label, labels)}`, "aria-hidden": "true" }), label);
}

export class SpeakerVoices {
  constructor(container, onInput, { onError } = {}) {
    this.container = container;
    this.onInput = onInput;
    this.onError = onError || (() => {});
    this.current = {}; // label -> voice of the current version
    this.selects = new Map(); // label -> <select>
    this.ticket = 0;
  }

  // The voice of each speaker now: its own (target.speaker_voices), else the language's one (target.voice).
  async load(labels, target, lang) {
    const ticket = ++this.ticket;
    this.selects.clear();
    this.current = Object.fromEntries(labels.map((l) => [l, (target.speaker_voices || {})[l] || target.voice || ""]));
    this.container.replaceChildren();
    this.container.closest("fieldset").hidden = labels.length === 0 || !target.voice;
    if (!labels.length || !target.voice) return;
    let catalog = { voices: [], default: null };
    try {
      catalog = await voiceCatalog(lang);
    } catch (err) {
      this.onError(err);
    }
    if (ticket !== this.ticket) return;
    const rows = labels.map((label) => {
      const select = el("select", { id: `speaker-voice-${label}`, dataset: { speaker: label } });
      const now = this.current[label];
      const voices = catalog.voices.some((v) => v.id === now) ? catalog.voices : [{ id: now, installed: true }, ...catalog.voices];
      for (const voice of voices) {
        const text = voice.id === now && !voice.licence ? `${now} (${t("speakers.currentVoice")})` : voiceOptionLabel(voice, voice.id === catalog.default);
        const option = el("option", { value: voice.id }, text);
        option.disabled = !voice.installed;
        select.append(option);
      }
      select.value = now;
      select.addEventListener("change", () => { row.classList.toggle("changed", select.value !== now); this.onInput(); });
      this.selects.set(label, select);
      const row = el("div", { class: "voice-row" },
        el("label", { for: select.id }, t("speakers.voiceOf"), " ", speakerTag(label, labels)), select);
      return row;
    });
    this.container.replaceChildren(...rows);
  }

  changes() {
    const out = {};
    for (const [label, select] of this.selects) if (select.value && select.value !== this.current[label]) out[label] = select.value;
    return out;
  }

  reset() {
    for (const [label, select] of this.selects) select.value = this.current[label];
    for (const row of this.container.querySelectorAll(".changed")) row.classList.remove("changed");
  }
}
