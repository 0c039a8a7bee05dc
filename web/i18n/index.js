// t(key, values): the string for the interface language, with {name} placeholders filled in.
// English is always loaded; another language is loaded only when chosen (?lang=ru, the saved choice,
// or the browser's language). A key missing from a translation falls back to English.
import en from "./en.js";

export const UI_LANGUAGES = { en: "English", ru: "Русский" };
let strings = en;
export let uiLanguage = "en";

export function t(key, values = {}) {
  const template = strings[key] ?? en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

function wanted() {
  const param = new URLSearchParams(location.search).get("lang");
  let saved = null;
  try { saved = localStorage.getItem("vt.uiLanguage"); } catch { /* storage may be off */ }
  const browser = (navigator.language || "en").slice(0, 2).toLowerCase();
  return [param, saved, browser].find((code) => code && code in UI_LANGUAGES) || "en";
}

export async function loadStrings(code = wanted()) {
  uiLanguage = code in UI_LANGUAGES ? code : "en";
  strings = uiLanguage === "en" ? en : (await import(`./${uiLanguage}.js`)).default;
  document.documentElement.lang = uiLanguage;
  return uiLanguage;
}

export function saveChoice(code) {
  try { localStorage.setItem("vt.uiLanguage", code); } catch { /* not fatal */ }
}

// Static markup: data-i18n="key" sets the text, data-i18n-attr="attr:key,attr:key" sets attributes.
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(",")) {
      const [attr, key] = pair.split(":");
      el.setAttribute(attr.trim(), t(key.trim()));
    }
  }
}
