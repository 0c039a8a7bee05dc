"""Actor pool sizes and the CPUs/GPUs each actor or task asks Ray for, fitted to the cluster."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from configs.settings import BatchSettings, Settings
    from pipelines.schema import JobRequest


@dataclass(frozen=True)
class Resources:
    """Actor pool sizes and the CPUs/GPUs each actor or task asks Ray for. A pool of 0 actors is a stage the
    batch does not have (diarization off; no dub with background 'separate')."""

    asr_actors: int
    translate_actors: int
    tts_actors: int
    actor_cpus: float
    task_cpus: float
    asr_gpus: float
    translate_gpus: float
    diarize_actors: int = 0
    separate_actors: int = 0


def optional_stages(jobs: Sequence[JobRequest], settings: Settings) -> dict[str, bool]:
    """Which of the batch's optional stages ``jobs`` need: ``diarize`` (diarize.enabled) and ``separate`` (a
    dub whose background, its own or mix.background, is 'separate'). A stage nobody needs gets no pool, so its
    CPUs go to the others."""
    separate = any(j.mode == "dub" and (j.background or settings.mix.background) == "separate" for j in jobs)
    return {"diarize": settings.diarize.enabled, "separate": separate}


def plan_resources(
    b: BatchSettings, cluster_cpus: float, cluster_gpus: float, *, diarize: bool = False, separate: bool = False
) -> Resources:
    """Fit the settings to the cluster: all pools must be alive at once, or the stream stalls.

    Each actor asks for ``num_cpus_per_actor``, scaled down so that every pool (the diarization and separation
    pools when ``diarize`` / ``separate``) plus one extract task fits in ``cluster_cpus``; extract tasks ask for
    half that, which also keeps Ray Data from fusing them into the ASR actors (extraction stays in tasks, spread
    over the nodes). ``num_gpus_per_actor`` goes to the ASR and translation actors; when it is 0 and the cluster
    has GPUs, they share them (at most one GPU each). Diarization and separation run on onnxruntime's CPU
    provider: their actors never ask for a GPU.
    """
    diarize_actors = b.diarize_actors if diarize else 0
    separate_actors = b.separate_actors if separate else 0
    actors = b.asr_actors + b.translate_actors + b.tts_actors + diarize_actors + separate_actors
    actor_cpus = round(min(b.num_cpus_per_actor, cluster_cpus / (actors + 1)), 3)
    gpus = b.num_gpus_per_actor
    if gpus <= 0 and cluster_gpus > 0:
        gpus = round(min(1.0, cluster_gpus / (b.asr_actors + b.translate_actors)), 3)
    return Resources(
        asr_actors=b.asr_actors,
        translate_actors=b.translate_actors,
        tts_actors=b.tts_actors,
        actor_cpus=max(actor_cpus, 0.01),
        task_cpus=max(round(min(1.0, actor_cpus) / 2, 3), 0.01),  # differs from the actors': no fusion
        asr_gpus=gpus,
        translate_gpus=gpus if b.num_gpus_per_actor > 0 or cluster_gpus > 0 else 0.0,
        diarize_actors=diarize_actors,
        separate_actors=separate_actors,
    )
