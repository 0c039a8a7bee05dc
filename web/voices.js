// The voice choice: one <select> per picked target language, filled from GET /v1/voices?language=xx (the
// language's default preselected; opt-in and not installed voices marked, and disabled when not installed),
// with a Preview button that speaks a short sample through POST /v1/audio/speech and plays it. The chosen
// voices go into the job as `voices` ({language: "engine:voice"}).
import { call, speech } from "./api.js";
import { t } from "./i18n/index.js";
import { el } from "./format.js";
import { languageName } from "./languages.js";

// A short sentence per language for the preview (numbers included: the engines must say them too).
const SAMPLES = {
  en: "Hello! This is how I sound: one, two, three.",
  ru: "Здравствуйте! Вот как звучит мой голос: раз, два, три.",
  es: "¡Hola! Así suena mi voz: uno, dos, tres.",
  de: "Hallo! So klingt meine Stimme: eins, zwei, drei.",
  fr: "Bonjour ! Voici ma voix : un, deux, trois.",
  it: "Ciao! Ecco come suona la mia voce: uno, due, tre.",
  pt: "Olá! É assim que a minha voz soa: um, dois, três.",
  ja: "こんにちは。これが私の声です。",
  zh: "你好！这是我的声音。",
  uk: "Вітаю! Ось як звучить мій голос: один, два, три.",
  pl: "Cześć! Tak brzmi mój głos: jeden, dwa, trzy.",
};

export function sampleSentence(lang) {
  return SAMPLES[lang] || SAMPLES.en;
}

// The catalog of a language's voices ({voices, default}), asked once per page (the job form and the editor).
const catalogs = new Map();

export function voiceCatalog(lang) {
  if (!catalogs.has(lang)) {
    const loading = call("GET", `/v1/voices?language=${encodeURIComponent(lang)}`)
      .then(({ body }) => ({ voices: body.data, default: body.defaults[lang] || null }));
    loading.catch(() => catalogs.delete(lang));
    catalogs.set(lang, loading);
  }
  return catalogs.get(lang);
}

export function voiceOptionLabel(voice, isDefault) {
  const marks = [voice.gender, voice.licence].filter(Boolean);
  if (isDefault) marks.unshift(t("voices.default"));
  if (voice.opt_in) marks.push(t("voices.optIn"));
  if (!voice.installed) marks.push(t("voices.notInstalled"));
  return `${voice.id} (${marks.join(", ")})`;
}

export class VoicePicker {
  constructor(container, audio, { onError } = {}) {
    this.container = container;
    this.audio = audio;
    this.onError = onError || (() => {});
    this.rows = new Map(); // language -> <select>
    this.previewUrl = null;
    this.pending = Promise.resolve();
  }

  load(lang) {
    return voiceCatalog(lang);
  }

  // The rows follow the picked target languages (kept in pick order; a choice survives re-renders). Calls run
  // one after another, so the last pick wins however the catalog answers come back.
  update(languages) {
    this.pending = this.pending.then(() => this.render([...languages]));
    return this.pending;
  }

  async render(languages) {
    for (const lang of [...this.rows.keys()]) if (!languages.includes(lang)) this.rows.delete(lang);
    const rows = [];
    for (const lang of languages) rows.push(await this.row(lang));
    this.container.replaceChildren(...rows.filter(Boolean));
    this.container.closest("fieldset").hidden = !rows.some(Boolean);
  }

  async row(lang) {
    let entry;
    try {
      entry = await this.load(lang);
    } catch (err) {
      this.onError(err);
      return null;
    }
    if (!entry.voices.length) return null;
    let select = this.rows.get(lang)?.select;
    if (!select) {
      select = el("select", { id: `voice-${lang}`, name: `voice-${lang}`, dataset: { lang } });
      for (const voice of entry.voices) {
        const option = el("option", { value: voice.id }, voiceOptionLabel(voice, voice.id === entry.default));
        option.disabled = !voice.installed;
        if (voice.opt_in) option.dataset.optIn = "true";
        select.append(option);
      }
      select.value = entry.default && entry.voices.some((v) => v.id === entry.default && v.installed)
        ? entry.default : (entry.voices.find((v) => v.installed)?.id || "");
      if (select.selectedOptions[0]) select.selectedOptions[0].defaultSelected = true; // what a form reset returns to
      const button = el("button", { type: "button", class: "secondary voice-preview", id: `voice-preview-${lang}`,
        "aria-label": t("voices.previewFor", { name: languageName(lang) }), onclick: () => this.preview(lang, button) },
      t("voices.preview"));
      this.rows.set(lang, { select, node: el("div", { class: "voice-row" },
        el("label", { for: select.id }, t("voices.for", { name: languageName(lang) })), select, button) });
    }
    return this.rows.get(lang).node;
  }

  async preview(lang, button) {
    const voice = this.rows.get(lang)?.select.value;
    if (!voice) return;
    button.disabled = true;
    try {
      const blob = await speech({ input: sampleSentence(lang), voice, language: lang, response_format: "wav" });
      if (this.previewUrl) URL.revokeObjectURL(this.previewUrl);
      this.previewUrl = URL.createObjectURL(blob);
      this.audio.src = this.previewUrl;
      this.audio.dataset.voice = voice;
      await this.audio.play().catch(() => {}); // autoplay rules may refuse; the audio is there to play
    } catch (err) {
      this.onError(err);
    } finally {
      button.disabled = false;
    }
  }

  // {language: voice id} for the picked languages that have a voice choice.
  values() {
    const out = {};
    for (const [lang, { select }] of this.rows) if (select.value) out[lang] = select.value;
    return out;
  }
}
