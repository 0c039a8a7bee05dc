// The result panel: player (audio switch, subtitles), downloads, timeline (by speaker) and the editor of the
// translations, the sentences' speakers and the speakers' voices. Save sends only what changed to
// PATCH /jobs/{id}/segments; the re-dub is followed like any job.
import { call, keyedDownload, mediaUrl } from "./api.js";
import { t } from "./i18n/index.js";
import { el } from "./format.js";
import { languageName } from "./languages.js";
import { Player } from "./player.js";
import { renderTimeline } from "./timeline.js";
import { Editor } from "./editor.js";
import { SpeakerVoices, speakerLabels } from "./speakers.js";
import { errorText } from "./jobs.js";

const $ = (id) => document.getElementById(id);

export class ResultPanel {
  constructor(jobs, { onError }) {
    this.jobs = jobs;
    this.onError = onError;
    this.section = $("result");
    this.player = new Player($("player"), $("original-audio"), { resolve: mediaUrl, onError });
    this.loading = 0; // the latest showLanguage wins
    this.editor = new Editor($("editor-rows"), () => this.updateSave(), (row) => this.seek(row));
    this.speakerVoices = new SpeakerVoices($("speaker-voices"), () => this.updateSave(), { onError });
    this.job = null;
    this.report = null;
    this.lang = null;
    this.pending = null; // {version, n} while a re-dub runs
    $("result-language").addEventListener("change", (e) => this.showLanguage(e.target.value).catch(onError));
    for (const radio of document.querySelectorAll('input[name="audio"]')) {
      radio.addEventListener("change", () => this.player.setOriginal($("audio-original").checked));
    }
    $("subtitle-select").addEventListener("change", (e) => this.player.showSubtitles(Number(e.target.value)));
    $("editor-form").addEventListener("submit", (e) => { e.preventDefault(); this.save(); });
    $("editor-reset").addEventListener("click", () => { this.speakerVoices.reset(); this.editor.reset(); });
    $("player").addEventListener("timeupdate", () => this.moveHead?.($("player").currentTime));
    window.addEventListener("beforeunload", (e) => { if (this.changeCount()) e.preventDefault(); });
  }

  async open(jobId) {
    try {
      const { body } = await call("GET", `/jobs/${jobId}`);
      await this.show(body.data);
      this.section.scrollIntoView({ block: "start" });
      $("result-heading").focus();
    } catch (err) {
      this.onError(err);
    }
  }

  outputUrl(name) {
    const url = this.job.output_urls[name];
    return url ? `${url}?v=${encodeURIComponent(this.job.finished_at || this.job.updated_at)}` : null;
  }

  async show(job, keepLanguage = false) {
    this.job = job;
    const reportName = job.outputs.find((n) => n.endsWith(".report.json"));
    this.section.hidden = false;
    if (!reportName) { $("result-status").textContent = t("result.notReady"); return; }
    const { body } = await call("GET", this.outputUrl(reportName));
    this.report = body;
    this.stem = reportName.slice(0, -".report.json".length); // outputs are <stem>.<lang>.mp4 and so on
    const langs = job.target_languages.filter((l) => this.report.targets[l]);
    const select = $("result-language");
    select.replaceChildren(...langs.map((l) => el("option", { value: l }, languageName(l))));
    $("result-language-field").hidden = langs.length < 2;
    const lang = keepLanguage && langs.includes(this.lang) ? this.lang : langs[0];
    select.value = lang;
    $("result-title").textContent = this.jobs.filename(job);
    $("result-version").textContent = t("result.version", { n: this.report.version || 1 });
    $("result-status").textContent = this.report.sentence_count ? "" : t("result.noSpeech");
    await this.showLanguage(lang);
    this.renderVersions();
  }

  async showLanguage(lang) {
    const ticket = ++this.loading;
    this.lang = lang;
    const job = this.job;
    const src = this.report.source_language;
    const stem = this.stem;
    const dub = job.mode === "dub";
    const tracks = [{ src: this.outputUrl(`${stem}.${lang}.vtt`), srclang: lang, default: true,
      label: t("result.subTarget", { language: languageName(lang) }) }];
    if (src !== lang && this.outputUrl(`${stem}.${src}.vtt`)) {
      tracks.push({ src: this.outputUrl(`${stem}.${src}.vtt`), srclang: src, label: t("result.subSource", { language: languageName(src) }) });
    }
    const [videoUrl, ...trackUrls] = await Promise.all(
      [mediaUrl(this.outputUrl(`${stem}.${lang}.mp4`)), ...tracks.map((tr) => mediaUrl(tr.src))]);
    if (ticket !== this.loading) return;
    tracks.forEach((tr, i) => { tr.src = trackUrls[i]; });
    this.player.load({ videoUrl, originalUrl: dub ? `/jobs/${job.job_id}/original-audio` : null, tracks });
    $("audio-switch").hidden = !dub;
    $("audio-nodub").hidden = dub;
    if (!dub) $("audio-dubbed").checked = true;
    const subs = $("subtitle-select");
    subs.replaceChildren(el("option", { value: "-1" }, t("result.subtitlesOff")),
      ...tracks.map((tr, i) => el("option", { value: String(i) }, tr.label)));
    subs.value = "0";
    this.player.video.textTracks.addEventListener?.("addtrack", () => this.player.showSubtitles(Number(subs.value)), { once: true });
    this.player.showSubtitles(0);
    this.renderDownloads(lang, src);
    const target = this.report.targets[lang];
    const rows = target.sentences;
    const labels = speakerLabels(this.report);
    const several = labels.length > 1 ? labels : []; // one speaker: no colours, no speaker to move a sentence to
    this.moveHead = renderTimeline($("timeline"), $("timeline-summary"), rows, this.report.duration_s, (row) => this.seek(row),
      several, $("speaker-legend"));
    $("editor-speaker-col").hidden = several.length === 0;
    this.editor.load(rows, several);
    this.editor.setLanguage(lang);
    this.updateSave();
    await this.speakerVoices.load(labels, dub ? target : {}, lang); // a dub's speakers' voices
    this.updateSave();
  }

  renderDownloads(lang, src) {
    const stem = this.stem;
    const name = this.jobs.filename(this.job).replace(/\.[^.]+$/, "") || "video";
    const link = (file, label, download) => {
      const url = this.outputUrl(file);
      return url ? el("li", {}, keyedDownload(el("a", { href: url, download, class: "button" }, label), this.onError)) : null;
    };
    const language = languageName(lang);
    const reportName = this.job.outputs.find((n) => n.endsWith(".report.json"));
    $("downloads").replaceChildren(
      link(`${stem}.${lang}.mp4`, t("result.dlVideo", { language }), `${name}.${lang}.mp4`),
      link(`${stem}.${lang}.srt`, t("result.dlSrt", { language }), `${name}.${lang}.srt`),
      link(`${stem}.${lang}.vtt`, t("result.dlVtt", { language }), `${name}.${lang}.vtt`),
      src !== lang ? link(`${stem}.${src}.srt`, t("result.dlSourceSrt", { language: languageName(src) }), `${name}.${src}.srt`) : null,
      link(reportName, t("result.dlReport"), `${name}.report.json`));
  }

  async renderVersions() {
    const list = $("versions");
    list.replaceChildren();
    $("versions-block").hidden = true;
    try {
      const { body } = await call("GET", `/jobs/${this.job.job_id}/versions`);
      const older = body.data.versions.filter((v) => !v.current);
      const items = older.map((v) => {
        const mp4 = v.outputs.find((n) => n.endsWith(`.${this.lang}.mp4`)) || v.outputs.find((n) => n.endsWith(".mp4"));
        if (!mp4) return null;
        const link = el("a", { href: v.output_urls[mp4], download: "" }, t("result.versionLink", { n: v.version }));
        return el("li", {}, keyedDownload(link, this.onError));
      }).filter(Boolean);
      list.replaceChildren(...items);
      $("versions-block").hidden = items.length === 0;
    } catch (err) {
      this.onError(err);
    }
  }

  seek(row) {
    this.player.seek(row.start_s);
    this.editor.focusRow(row.id);
  }

  changeCount() {
    return this.editor.changes().length + Object.keys(this.speakerVoices.changes()).length;
  }

  updateSave() {
    const n = this.changeCount();
    const busy = this.job && !["succeeded", "failed", "cancelled"].includes(this.job.state);
    $("editor-save").disabled = n === 0 || busy;
    $("editor-reset").disabled = n === 0;
    $("editor-save").textContent = n ? t("editor.saveN", { n }) : t("editor.save");
  }

  setStatus(text, kind = "") {
    const status = $("editor-status");
    status.textContent = text;
    status.className = `status ${kind}`;
    status.setAttribute("role", kind === "error" ? "alert" : "status");
  }

  async save() {
    const changes = this.editor.changes();
    const voices = this.speakerVoices.changes();
    if (!changes.length && !Object.keys(voices).length) { this.setStatus(t("editor.nothing")); return; }
    $("editor-save").disabled = true;
    this.setStatus(t("editor.saving"));
    const edit = { target_language: this.lang, segments: changes };
    if (Object.keys(voices).length) edit.speaker_voices = voices; // only the speakers whose voice changed
    try {
      const { status, body } = await call("PATCH", `/jobs/${this.job.job_id}/segments`, edit);
      if (status === 200) { this.setStatus(t("editor.unchanged")); this.updateSave(); return; }
      this.pending = { jobId: this.job.job_id, version: body.data.version, n: body.data.changed.length };
      this.setStatus(t("editor.queued", { n: this.pending.n, version: this.pending.version }));
      this.jobs.markRedub(this.job.job_id);
      this.job = body.data.job;
      this.jobs.update(body.data.job);
    } catch (err) {
      this.setStatus(err.message, "error");
      this.updateSave();
    }
  }

  // Called by the job list on every change of any job.
  async jobChanged(job) {
    if (!this.job || job.job_id !== this.job.job_id) return;
    this.job = job;
    this.updateSave();
    if (!this.pending || this.pending.jobId !== job.job_id) return;
    if (job.state === "succeeded") {
      this.pending = null;
      try {
        await this.show(job, true);
        const redub = this.report.redub || {};
        const n = redub.resynthesized ?? this.report.targets[this.lang].resynthesized;
        this.setStatus(t("editor.done", { version: this.report.version || 1, n }), "ok");
      } catch (err) {
        this.setStatus(err.message, "error");
      }
    } else if (job.state === "failed" || job.state === "cancelled") {
      this.pending = null;
      this.setStatus(t("editor.failed", { message: job.error ? errorText(job.error) : t("state." + job.state) }), "error");
      this.updateSave();
    }
  }
}
