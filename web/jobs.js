// The jobs list: one card per job with its five stages, overall progress, ETA, errors in plain words and a
// cancel button, kept live by each job's Server-Sent Events stream (GET /jobs/{id}/events, read with fetch
// so that it carries the API key).
import { call, eventStream } from "./api.js";
import { t } from "./i18n/index.js";
import { el, formatDuration } from "./format.js";
import { languageName } from "./languages.js";

// The worker's progress shares (serve_app/jobs/worker.py): input stages, then per target language. Diarization
// and separation take their shares out of ASR's there, so the input stages keep these totals; on the page they
// are the speech bar's, named after them while they run.
const INPUT = { extract: 0.05, asr: 0.30, segment: 0.02 };
const IN_SPEECH_BAR = new Set(["diarize", "separate"]);
const PER_TARGET = { dub: { translate: 0.35, tts: 0.45, mux: 0.20 }, subtitles: { translate: 0.70, mux: 0.30 } };
const STAGES = ["extract", "asr", "translate", "tts", "mux"];
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

// Each shown stage's fraction done (0–1), from the overall progress and the current stage.
export function stageFractions(job) {
  const weights = PER_TARGET[job.mode] || PER_TARGET.dub;
  const nTargets = job.redubbing ? 1 : Math.max(1, job.target_languages.length);
  const p = job.state === "succeeded" ? 1 : job.progress;
  const inputTotal = INPUT.extract + INPUT.asr + INPUT.segment;
  const out = {};
  out.extract = clamp(p / INPUT.extract);
  out.asr = clamp((p - INPUT.extract) / (INPUT.asr + INPUT.segment));
  const share = (1 - inputTotal) / nTargets;
  let before = 0;
  for (const stage of ["translate", "tts", "mux"]) {
    if (!(stage in weights)) { out[stage] = null; continue; }
    let done = 0;
    for (let i = 0; i < nTargets; i += 1) {
      const start = inputTotal + share * (i + before);
      done += clamp((p - start) / (share * weights[stage]));
    }
    out[stage] = done / nTargets;
    before += weights[stage];
  }
  return out;
}

function clamp(x) { return Math.min(1, Math.max(0, x)); }

export class JobList {
  constructor(root, emptyEl, { onOpen, onChange, onError }) {
    this.root = root;
    this.emptyEl = emptyEl;
    this.onOpen = onOpen;
    this.onChange = onChange;
    this.onError = onError;
    this.jobs = new Map();
    this.cards = new Map();
    this.streams = new Map();
    this.filenames = new Map();
    this.redubbing = new Set();
  }

  async refresh() {
    const { body } = await call("GET", "/jobs?limit=30");
    const seen = new Set();
    for (const job of body.data.jobs) { seen.add(job.job_id); this.update(job); }
    for (const id of [...this.jobs.keys()]) if (!seen.has(id) && TERMINAL.has(this.jobs.get(id).state)) this.remove(id);
    this.sort();
  }

  remove(id) {
    this.jobs.delete(id);
    this.cards.get(id)?.remove();
    this.cards.delete(id);
  }

  sort() {
    const order = [...this.jobs.values()].sort((a, b) => b.created_at.localeCompare(a.created_at));
    this.root.replaceChildren(...order.map((j) => this.cards.get(j.job_id)));
    this.emptyEl.hidden = order.length > 0;
  }

  markRedub(jobId) { this.redubbing.add(jobId); }

  update(job) {
    const previous = this.jobs.get(job.job_id);
    if (TERMINAL.has(job.state) && !this.streams.has(job.job_id)) this.redubbing.delete(job.job_id);
    job.redubbing = this.redubbing.has(job.job_id);
    this.jobs.set(job.job_id, job);
    if (!this.cards.has(job.job_id)) {
      this.cards.set(job.job_id, el("li", { class: "job", id: `job-${job.job_id}`, dataset: { jobId: job.job_id } }));
      this.sort();
    }
    this.render(job);
    if (!TERMINAL.has(job.state)) this.follow(job.job_id);
    if (!previous || previous.state !== job.state || previous.progress !== job.progress) this.onChange(job, previous);
    if (job.file_id && !this.filenames.has(job.file_id)) this.loadFilename(job);
  }

  async loadFilename(job) {
    this.filenames.set(job.file_id, "");
    try {
      const { body } = await call("GET", `/files/${job.file_id}`);
      this.filenames.set(job.file_id, body.data.filename);
      this.render(this.jobs.get(job.job_id));
    } catch { /* the name is decoration; the job id stays shown */ }
  }

  filename(job) { return this.filenames.get(job.file_id) || job.job_id.slice(0, 8); }

  follow(jobId) {
    if (this.streams.has(jobId)) return;
    let finished = false;
    const stream = eventStream(`/jobs/${jobId}/events`, (name, data) => {
      if (name !== "job") return;
      const job = JSON.parse(data);
      if (TERMINAL.has(job.state)) { finished = true; this.stop(jobId); }
      this.update(job);
      if (TERMINAL.has(job.state)) this.redubbing.delete(jobId);
    });
    this.streams.set(jobId, stream);
    const closed = (err) => finished || err?.name === "AbortError" || Boolean(err?.aborted); // stop() closed it
    stream.done.then(() => finished, closed).then((ok) => {
      if (ok) return;
      // The stream ends after the terminal state; a drop before that is shown, then recovered by polling.
      this.stop(jobId);
      const card = this.cards.get(jobId);
      if (card) card.querySelector(".job-note").textContent = t("jobs.lost");
      setTimeout(() => this.poll(jobId), 1500);
    });
  }

  stop(jobId) {
    this.streams.get(jobId)?.close();
    this.streams.delete(jobId);
  }

  async poll(jobId) {
    try {
      const { body } = await call("GET", `/jobs/${jobId}`);
      this.update(body.data);
    } catch (err) {
      this.onError(err);
      setTimeout(() => this.poll(jobId), 5000);
    }
  }

  async cancel(jobId, button) {
    button.disabled = true;
    button.textContent = t("jobs.cancelling");
    try {
      const { body } = await call("DELETE", `/jobs/${jobId}`);
      this.update(body.data);
    } catch (err) {
      this.onError(err);
      button.disabled = false;
      button.textContent = t("jobs.cancel");
    }
  }

  render(job) {
    const card = this.cards.get(job.job_id);
    if (!card) return;
    const fractions = stageFractions(job);
    const stages = STAGES.filter((s) => fractions[s] !== null).map((stage) => {
      const f = fractions[stage];
      const state = f >= 1 ? "done" : (job.state === "running" && f > 0) || (job.state === "running" && job.stage === stage) ? "active" : "pending";
      const name = t("stage." + (stage === "asr" && IN_SPEECH_BAR.has(job.stage) && f < 1 ? job.stage : stage));
      const bar = el("progress", { max: "1", value: f.toFixed(3), "aria-label": name });
      return el("li", { class: `stage stage-${state}`, dataset: { stage } },
        el("span", { class: "stage-name" }, name), bar,
        el("span", { class: "visually-hidden" }, t("stage." + state)));
    });
    const targets = job.target_languages.map(languageName).join(", ");
    const percent = Math.round((job.state === "succeeded" ? 1 : job.progress) * 100);
    let eta = "";
    if (job.state === "running" && job.eta_s != null) eta = job.eta_s < 5 ? t("jobs.etaSoon") : t("jobs.eta", { time: formatDuration(job.eta_s) });
    const actions = [];
    if (!TERMINAL.has(job.state)) {
      const cancel = el("button", { type: "button", class: "secondary", disabled: job.cancel_requested }, t(job.cancel_requested ? "jobs.cancelling" : "jobs.cancel"));
      cancel.addEventListener("click", () => this.cancel(job.job_id, cancel));
      actions.push(cancel);
    }
    if (job.outputs.length) actions.push(el("button", { type: "button", class: "open", onclick: () => this.onOpen(job.job_id) }, t("jobs.open")));
    const error = job.error ? el("p", { class: "job-error", role: "alert" }, errorText(job.error)) : null;
    card.className = `job job-${job.state}`;
    card.replaceChildren(...[
      el("div", { class: "job-head" },
        el("strong", { class: "job-name" }, this.filename(job)),
        el("span", { class: "job-targets" }, t("jobs.to", { languages: targets })),
        el("span", { class: `badge badge-${job.state}` }, t("state." + job.state)),
        job.redubbing && !TERMINAL.has(job.state) ? el("span", { class: "badge" }, t("jobs.redubbing")) : null),
      el("ol", { class: "stages" }, stages),
      el("div", { class: "job-progress" },
        el("progress", { max: "100", value: String(percent), "aria-label": t("jobs.progress", { percent }) }),
        el("span", { class: "job-percent" }, t("jobs.progress", { percent })), el("span", { class: "job-eta" }, eta)),
      error,
      el("p", { class: "job-note", "aria-live": "polite" }),
      el("div", { class: "job-actions" }, actions)].filter(Boolean)); // replaceChildren would print "null"
  }
}

export function errorText(error) {
  const key = "error." + error.code;
  const friendly = t(key) !== key ? t(key) : "";
  return [friendly, error.message].filter(Boolean).join(" ");
}
