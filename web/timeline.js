// The sentences over the video's duration: one button per sentence, marked when the dub had to be sped
// up or runs over its slot (or was edited), with a band in its speaker's colour and the speaker's label
// (``labels``: the report's speakers; none: no bands); a playhead follows the video. Positions are set
// through the CSSOM (element.style), which a strict Content-Security-Policy allows.
import { t } from "./i18n/index.js";
import { el, formatClock } from "./format.js";
import { speakerClass, speakerTag } from "./speakers.js";

export function sentenceState(row) {
  if (row.overflow_s > 0 || row.flags.includes("overflow")) return "overflow";
  if ((row.speed ?? 1) > 1.001 || row.flags.includes("sped_up")) return "sped";
  return "normal";
}

export function renderTimeline(root, summary, rows, duration, onSeek, labels = [], legend = null) {
  const total = Math.max(duration || 0, ...rows.map((r) => r.end_s), 0.001);
  const bySpeaker = labels.length > 0;
  root.classList.toggle("by-speaker", bySpeaker);
  const items = rows.map((row, i) => {
    const state = sentenceState(row);
    const edited = row.flags.includes("edited");
    let label = t("timeline.item", { n: i + 1, start: formatClock(row.start_s), end: formatClock(row.end_s),
      state: t(state === "normal" ? "timeline.legendNormal" : state === "sped" ? "timeline.legendSped" : "timeline.legendOverflow") });
    const speaker = bySpeaker && row.speaker ? row.speaker : null;
    if (speaker) label = t("timeline.itemSpeaker", { item: label, speaker });
    const classes = ["tl-item", `tl-${state}`, edited ? "tl-edited" : "", speaker ? `tl-speaker ${speakerClass(speaker, labels)}` : ""];
    const button = el("button", { type: "button", class: classes.filter(Boolean).join(" "), title: label,
      "aria-label": label, dataset: speaker ? { id: row.id, speaker } : { id: row.id }, onclick: () => onSeek(row) },
    speaker ? el("span", { class: "tl-label", "aria-hidden": "true" }, speaker) : null);
    button.style.left = `${(row.start_s / total) * 100}%`;
    button.style.width = `${Math.max(((row.end_s - row.start_s) / total) * 100, 0.6)}%`;
    return button;
  });
  const playhead = el("div", { class: "tl-playhead", "aria-hidden": "true" });
  root.replaceChildren(...items, playhead);
  const sped = rows.filter((r) => sentenceState(r) === "sped").length;
  const overflow = rows.filter((r) => sentenceState(r) === "overflow").length;
  summary.textContent = t("timeline.summary", { sped, overflow, total: rows.length });
  if (legend) {
    legend.replaceChildren(...labels.map((l) => el("li", { dataset: { speaker: l } }, speakerTag(l, labels),
      " ", t("timeline.speakerCount", { n: rows.filter((r) => r.speaker === l).length }))));
    legend.hidden = !bySpeaker;
  }
  return (time) => { playhead.style.left = `${Math.min(time / total, 1) * 100}%`; };
}
