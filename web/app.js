// The page's entry point: loads the strings and the config, then wires the upload form, the jobs list
// and the result panel. No inline script or style anywhere, so the page runs under a strict CSP.
import { call, upload, resumableUpload, setMaxFileSize, ApiError, apiKey, setApiKey } from "./api.js";
import { t, loadStrings, translatePage, saveChoice, UI_LANGUAGES, uiLanguage } from "./i18n/index.js";
import { el, formatBytes } from "./format.js";
import { TargetPicker, fillSourceSelect, setLanguages } from "./languages.js";
import { JobList } from "./jobs.js";
import { VoicePicker } from "./voices.js";
import { ResultPanel } from "./result.js";

const $ = (id) => document.getElementById(id);
const MEDIA_EXTENSIONS = new Set(["mp4", "m4v", "mov", "mkv", "webm", "avi", "flv", "wmv", "mpg", "mpeg", "ts", "3gp",
  "ogv", "mp3", "m4a", "aac", "wav", "flac", "ogg", "oga", "opus", "wma", "aiff", "aif"]);

let config = { max_file_size: 0, languages: [], accept: [], resumable_threshold_bytes: 0, upload_chunk_bytes: 0,
  speakers_limit: 20, speakers_enabled: true };
let chosenFile = null;
let currentUpload = null;
let picker = null;
let voicePicker = null;

function showError(err) {
  $("global-error-text").textContent = err instanceof Error ? err.message : String(err);
  $("global-error").hidden = false;
  if (err?.status === 401) showKeyForm(true);
}

// The API key field: shown once the server asks for a key (401) or while one is set. A new key reloads
// the page, which then sends it on every call (api.js).
function showKeyForm(focus = false) {
  $("key-form").hidden = false;
  $("key-forget").hidden = !apiKey();
  if (focus && !apiKey()) $("api-key").focus();
}

function setUpKeyForm() {
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) { $("api-key").focus(); return; }
    setApiKey(key);
    location.reload();
  });
  $("key-forget").addEventListener("click", () => { setApiKey(""); location.reload(); });
  if (apiKey()) showKeyForm();
}

function formStatus(text, kind = "") {
  const status = $("form-status");
  status.textContent = text;
  status.className = `status ${kind}`;
  status.setAttribute("role", kind === "error" ? "alert" : "status");
}

// Client-side checks before any byte is sent: size (MAX_FILE_SIZE from GET /config) and type.
export function checkFile(file, maxBytes) {
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  const looksMedia = /^(video|audio)\//.test(file.type) || MEDIA_EXTENSIONS.has(ext);
  if (!looksMedia) return t("file.badType", { name: file.name });
  if (file.size === 0) return t("file.empty", { name: file.name });
  if (maxBytes && file.size > maxBytes) return t("file.tooLarge", { name: file.name, size: formatBytes(file.size), limit: formatBytes(maxBytes) });
  return null;
}

function chooseFile(file) {
  chosenFile = null;
  $("file-info").textContent = t("file.none");
  if (!file) return;
  const problem = checkFile(file, config.max_file_size);
  if (problem) { formStatus(problem, "error"); $("file").value = ""; return; }
  chosenFile = file;
  $("file-info").textContent = t("file.selected", { name: file.name, size: formatBytes(file.size) });
  formStatus("");
}

function glossaryProblem(text) {
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i].trim();
    if (!line || line.startsWith("#")) continue;
    const [term, ...rest] = line.split("=");
    if (!rest.length || !term.trim() || !rest.join("=").trim()) return t("glossary.bad", { line: i + 1 });
  }
  return null;
}

function setUploading(on) {
  $("upload-panel").hidden = !on;
  $("submit").disabled = on;
  $("file").disabled = on;
}

async function submit(event, jobs) {
  event.preventDefault();
  if (currentUpload) return;
  const link = $("url").value.trim();
  if (!chosenFile && !link) { formStatus(t("form.needFile"), "error"); $("file").focus(); return; }
  if (!chosenFile && !/^https?:\/\/\S+$/i.test(link)) { formStatus(t("url.bad", { url: link }), "error"); $("url").focus(); return; }
  const targets = picker.values;
  if (!targets.length) { formStatus(t("form.needTarget"), "error"); $("target-search").focus(); return; }
  const glossary = $("glossary").value;
  const bad = glossaryProblem(glossary);
  if (bad) { formStatus(bad, "error"); $("glossary").focus(); return; }
  const speakers = speakerFields();
  const badCount = speakersProblem(speakers);
  if (badCount) { formStatus(badCount, "error"); $("speakers-advanced").open = true; $("min-speakers").focus(); return; }
  const form = $("job-form");
  if (!chosenFile) { await submitLink(link, targets, glossary, jobs); return; }
  const data = new FormData(); // the token and fields first: the server checks them before storing the file
  data.append("csrf_token", form.elements.csrf_token.value);
  data.append("target_languages", targets.join(","));
  data.append("source_language", $("source-language").value);
  data.append("mode", form.elements.mode.value);
  data.append("burn_in", $("burn-in").checked ? "true" : "false");
  if ($("background").value) data.append("background", $("background").value);
  if (glossary.trim()) data.append("glossary", glossary);
  const voices = jobVoices(form);
  if (Object.keys(voices).length) data.append("voices", JSON.stringify(voices));
  for (const [name, value] of Object.entries(speakers)) data.append(name, String(value));
  data.append("file", chosenFile, chosenFile.name);
  setUploading(true);
  formStatus("");
  const bar = $("upload-progress");
  bar.value = 0;
  const onProgress = (loaded, total) => {
    if (loaded < 0) { $("upload-text").textContent = t("upload.processing"); return; }
    bar.value = total ? loaded / total : 0;
    $("upload-text").textContent = t("upload.progress", { loaded: formatBytes(loaded), total: formatBytes(total),
      percent: total ? Math.floor((loaded / total) * 100) : 0 });
  };
  onProgress(0, chosenFile.size);
  const resumable = config.upload_chunk_bytes > 0 && chosenFile.size > config.resumable_threshold_bytes;
  currentUpload = resumable
    ? resumableJob(chosenFile, jobFields(targets, glossary), onProgress)
    : upload(form.action, data, onProgress);
  try {
    const body = await currentUpload.promise;
    formStatus(t("upload.started"), "ok");
    jobs.update(body.data);
    form.reset();
    picker.sync();
    chooseFile(null);
    $(`job-${body.data.job_id}`)?.scrollIntoView({ block: "nearest" });
  } catch (err) {
    formStatus(err.message, err.aborted ? "" : "error");
  } finally {
    currentUpload = null;
    setUploading(false);
  }
}

// The chosen voices, for a dub only (subtitles-only jobs speak nothing).
function jobVoices(form) {
  return form.elements.mode.value === "dub" ? voicePicker.values() : {};
}

// "term = translation" lines (checked by glossaryProblem) -> {term: translation}, as POST /jobs takes it.
function glossaryObject(text) {
  const out = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const [term, ...rest] = line.split("=");
    out[term.trim()] = rest.join("=").trim();
  }
  return out;
}

// A link instead of a file: POST /jobs {url, ...}; the server refuses what it will not fetch (4xx, shown here).
// What POST /jobs takes besides the input (file_id or url), from the form.
function jobFields(targets, glossary) {
  return { target_languages: targets, source_language: $("source-language").value || null,
    mode: $("job-form").elements.mode.value, burn_in: $("burn-in").checked, glossary: glossaryObject(glossary),
    background: $("background").value || null, voices: jobVoices($("job-form")), ...speakerFields() };
}

// The speakers field: a count (1..GET /config's speakers_limit) or automatic; "at least"/"at most" bound the
// automatic count only, so they are off while a count is chosen (the server refuses a contradiction anyway).
function setUpSpeakers() {
  const select = $("speakers");
  $("speakers-field").hidden = !config.speakers_enabled;
  for (let n = 1; n <= config.speakers_limit; n += 1) select.append(el("option", { value: String(n) }, String(n)));
  for (const id of ["min-speakers", "max-speakers"]) $(id).max = String(config.speakers_limit);
  const sync = () => {
    for (const id of ["min-speakers", "max-speakers"]) $(id).disabled = select.value !== "";
  };
  select.addEventListener("change", sync);
  $("job-form").addEventListener("reset", () => setTimeout(sync));
}

// What POST /jobs (and the upload form) takes for the speakers: {speakers} or {min_speakers, max_speakers}; {} is
// automatic within the server's bounds.
function speakerFields() {
  if ($("speakers-field").hidden) return {};
  if ($("speakers").value) return { speakers: Number($("speakers").value) };
  const out = {};
  const min = $("min-speakers").value.trim();
  const max = $("max-speakers").value.trim();
  if (min) out.min_speakers = Number(min);
  if (max) out.max_speakers = Number(max);
  return out;
}

function speakersProblem({ min_speakers: min, max_speakers: max }) {
  const limit = config.speakers_limit;
  const bad = (v) => v !== undefined && !(Number.isInteger(v) && v >= 1 && v <= limit);
  if (bad(min) || bad(max) || (min !== undefined && max !== undefined && min > max)) {
    return t("speakers.bad", { min: min ?? 1, max: max ?? limit, limit });
  }
  return null;
}

// A big file: a resumable upload in chunks (progress, cancel, retries from the server's offset), then POST /jobs
// with the stored file's id. The same {promise, abort} as upload(); the promise resolves with the job's envelope.
function resumableJob(file, fields, onProgress) {
  const sending = resumableUpload(file, { chunkBytes: config.upload_chunk_bytes, onProgress,
    onChunk: (state) => { if (state.complete) onProgress(-1, -1); } });
  const promise = sending.promise.then((stored) => call("POST", "/jobs", { file_id: stored.file_id, ...fields }))
    .then((answer) => answer.body);
  return { promise, abort: sending.abort };
}

async function submitLink(link, targets, glossary, jobs) {
  const form = $("job-form");
  const body = { url: link, ...jobFields(targets, glossary) };
  $("submit").disabled = true;
  formStatus("");
  try {
    const { body: answer } = await call("POST", "/jobs", body);
    formStatus(t("url.started"), "ok");
    jobs.update(answer.data);
    form.reset();
    picker.sync();
    $(`job-${answer.data.job_id}`)?.scrollIntoView({ block: "nearest" });
  } catch (err) {
    formStatus(err.message, "error");
    $("url").focus();
  } finally {
    $("submit").disabled = false;
  }
}

function setUpDropZone() {
  const zone = $("drop-zone");
  const stop = (e) => { e.preventDefault(); e.stopPropagation(); };
  for (const name of ["dragenter", "dragover"]) zone.addEventListener(name, (e) => { stop(e); zone.classList.add("dragging"); });
  for (const name of ["dragleave", "drop"]) zone.addEventListener(name, (e) => { stop(e); zone.classList.remove("dragging"); });
  zone.addEventListener("drop", (e) => chooseFile(e.dataTransfer.files[0]));
  // A file dropped outside the zone must not navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  $("file").addEventListener("change", (e) => chooseFile(e.target.files[0]));
}

function setUpUiLanguage() {
  const select = $("ui-language");
  select.replaceChildren(...Object.entries(UI_LANGUAGES).map(([code, name]) => el("option", { value: code }, name)));
  select.value = uiLanguage;
  select.addEventListener("change", () => {
    saveChoice(select.value);
    const url = new URL(location.href);
    url.searchParams.set("lang", select.value);
    location.assign(url);
  });
}

async function main() {
  await loadStrings();
  translatePage();
  setUpUiLanguage();
  setUpKeyForm();
  try {
    config = (await call("GET", "/config")).body.data;
  } catch (err) {
    showError(err);
  }
  setMaxFileSize(config.max_file_size);
  setLanguages(config.languages);
  $("file-limit").textContent = t("file.limit", { size: formatBytes(config.max_file_size) });
  $("file").accept = config.accept.join(",");
  fillSourceSelect($("source-language"), config.languages);
  setUpSpeakers();
  voicePicker = new VoicePicker($("voice-choices"), $("voice-preview-audio"), { onError: showError });
  picker = new TargetPicker({ list: $("target-list"), search: $("target-search"), chips: $("target-chips"), empty: $("target-empty") },
    config.languages, [], (codes) => voicePicker.update(codes).catch(showError));
  let result = null;
  const jobs = new JobList($("job-list"), $("jobs-empty"), {
    onOpen: (id) => result.open(id),
    onChange: (job) => result.jobChanged(job),
    onError: showError,
  });
  result = new ResultPanel(jobs, { onError: showError });
  setUpDropZone();
  // Subtitles only: no voice to choose (the fieldset is disabled, and no voices are sent).
  for (const radio of $("job-form").elements.mode) {
    radio.addEventListener("change", () => { $("voices-field").disabled = $("job-form").elements.mode.value !== "dub"; });
  }
  $("job-form").addEventListener("reset", () => { $("voices-field").disabled = false; });
  $("job-form").addEventListener("submit", (e) => submit(e, jobs));
  $("upload-cancel").addEventListener("click", () => currentUpload?.abort());
  $("jobs-refresh").addEventListener("click", () => jobs.refresh().catch(showError));
  $("global-error-close").addEventListener("click", () => { $("global-error").hidden = true; });
  await jobs.refresh().catch(showError);
  document.body.dataset.readyMs = String(Math.round(performance.now()));
  document.body.dataset.ready = "true";
}

main().catch((err) => showError(err instanceof ApiError ? err : new Error(String(err?.message || err))));
