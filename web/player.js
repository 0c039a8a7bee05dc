// The video player with a dubbed/original audio switch and subtitle tracks.
// Browsers rarely let a page choose an mp4's audio track (Chromium has no audioTracks), so "Original"
// mutes the video (whose first track is the dub) and plays GET /jobs/{id}/original-audio in a hidden
// <audio> element kept in sync with the video: play, pause, seek, rate and drift over 0.25 s.
const MAX_DRIFT_S = 0.25;

export class Player {
  // resolve(url) → a promise of what the <audio> may load (a blob: URL when requests need an API key).
  constructor(video, audio, { resolve = (url) => Promise.resolve(url), onError = () => {} } = {}) {
    this.video = video;
    this.audio = audio;
    this.resolve = resolve;
    this.onError = onError;
    this.original = false;
    const v = video;
    v.addEventListener("play", () => { if (this.original) this.sync(true); });
    v.addEventListener("pause", () => this.audio.pause());
    v.addEventListener("seeked", () => { if (this.original) this.sync(!v.paused); });
    v.addEventListener("ratechange", () => { this.audio.playbackRate = v.playbackRate; });
    v.addEventListener("ended", () => this.audio.pause());
    v.addEventListener("timeupdate", () => {
      if (this.original && !v.paused && Math.abs(this.audio.currentTime - v.currentTime) > MAX_DRIFT_S) this.sync(true);
    });
    v.addEventListener("volumechange", () => {
      this.audio.volume = v.volume;
      if (this.original && !v.muted) v.muted = true; // the dub must stay silent while the original plays
    });
  }

  load({ videoUrl, originalUrl, tracks }) {
    this.audio.pause();
    this.video.pause();
    this.video.replaceChildren(...tracks.map((tr) => {
      const track = document.createElement("track");
      Object.assign(track, { kind: "subtitles", src: tr.src, srclang: tr.srclang, label: tr.label, default: Boolean(tr.default) });
      return track;
    }));
    this.video.src = videoUrl;
    this.originalUrl = originalUrl;
    this.audio.removeAttribute("src");
    delete this.audio.dataset.url;
    this.video.load();
    this.setOriginal(this.original && Boolean(originalUrl));
  }

  setOriginal(on) {
    this.original = on && Boolean(this.originalUrl);
    if (this.original) {
      this.video.muted = true;
      const wanted = this.originalUrl;
      this.resolve(wanted).then((src) => {
        if (!this.original || this.originalUrl !== wanted) return; // switched back or reloaded meanwhile
        if (this.audio.dataset.url !== wanted) { this.audio.src = src; this.audio.dataset.url = wanted; }
        this.sync(!this.video.paused);
      }, this.onError);
    } else {
      this.audio.pause();
      this.video.muted = false;
    }
  }

  sync(play) {
    this.audio.playbackRate = this.video.playbackRate;
    this.audio.volume = this.video.volume;
    try { this.audio.currentTime = this.video.currentTime; } catch { /* not loaded yet: set on play */ }
    if (play) this.audio.play().catch(() => { /* autoplay refused: the next user play resumes it */ });
  }

  // mode "showing" for the track at index (or none with -1), "disabled" for the others
  showSubtitles(index) {
    [...this.video.textTracks].forEach((track, i) => { track.mode = i === index ? "showing" : "disabled"; });
  }

  seek(seconds) {
    this.video.currentTime = seconds;
  }
}
