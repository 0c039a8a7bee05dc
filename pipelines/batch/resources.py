"""Actor pool sizes and the CPUs/GPUs each actor or task asks Ray for, fitted to the cluster."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from configs.settings import BatchSettings


@dataclass(frozen=True)
class Resources:
    """Actor pool sizes and the CPUs/GPUs each actor or task asks Ray for."""

    asr_actors: int
    translate_actors: int
    tts_actors: int
    actor_cpus: float
    task_cpus: float
    asr_gpus: float
    translate_gpus: float


def plan_resources(b: BatchSettings, cluster_cpus: float, cluster_gpus: float) -> Resources:
    """Fit the settings to the cluster: all pools must be alive at once, or the stream stalls.

    Each actor asks for ``num_cpus_per_actor``, scaled down so that every pool plus one extract task
    fits in ``cluster_cpus``; extract tasks ask for half that, which also keeps Ray Data from fusing
    them into the ASR actors (extraction stays in tasks, spread over the nodes). ``num_gpus_per_actor``
    goes to the ASR and translation actors; when it is 0 and the cluster has GPUs, they share them (at
    most one GPU each).
    """
    actors = b.asr_actors + b.translate_actors + b.tts_actors
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
    )
