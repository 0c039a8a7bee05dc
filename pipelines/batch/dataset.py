"""The lazy Ray Data pipeline over a batch's jobs: extract tasks, then the ASR, regroup, diarize, translate,
separate and finish pools (diarize and separate only when the batch needs them: ``resources.optional_stages``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pipelines.batch.actors import (
    ASRActor,
    DiarizeActor,
    FinishActor,
    RegroupActor,
    SeparateActor,
    TranslateActor,
    extract_chunks,
)
from pipelines.schema import JobRequest

if TYPE_CHECKING:
    from configs.settings import Settings
    from pipelines.batch.resources import Resources


def build_dataset(jobs: Sequence[JobRequest], settings: Settings, out: str, res: Resources) -> Any:
    """The lazy Ray Data pipeline over ``jobs``; one output row per job (see ``FinishActor``)."""
    import ray.data

    b = settings.batch
    # One row per block: a task's output is otherwise held until the whole task ends, so a file
    # would wait for its neighbours before the next stage (and the manifest) saw it.
    ray.data.DataContext.get_current().target_max_block_size = 1
    items = [{"input": j.input, "request": j.model_dump_json()} for j in jobs]
    ds: Any = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    ds = ds.map_batches(
        extract_chunks, batch_size=1, batch_format="pyarrow", num_cpus=res.task_cpus,
        fn_kwargs={"chunk_max_s": b.chunk_max_s, "min_silence_ms": settings.asr.min_silence_ms},
    )  # fmt: skip
    pool = ray.data.ActorPoolStrategy
    ds = ds.map_batches(
        ASRActor, fn_constructor_args=(settings,), compute=pool(size=res.asr_actors), batch_size=b.asr_batch_size,
        batch_format="pyarrow", num_cpus=res.actor_cpus, num_gpus=res.asr_gpus or None,
    )  # fmt: skip
    ds = ds.map_batches(RegroupActor, compute=pool(size=1), batch_size=None, batch_format="pyarrow", num_cpus=0)
    if res.diarize_actors:  # before translation: a speaker change ends a sentence
        ds = ds.map_batches(
            DiarizeActor, fn_constructor_args=(settings,), compute=pool(size=res.diarize_actors), batch_size=1,
            batch_format="pyarrow", num_cpus=res.actor_cpus,
        )  # fmt: skip
    ds = ds.map_batches(
        TranslateActor, fn_constructor_args=(settings,), compute=pool(size=res.translate_actors), batch_size=1,
        batch_format="pyarrow", num_cpus=res.actor_cpus, num_gpus=res.translate_gpus or None,
    )  # fmt: skip
    if res.separate_actors:  # right before finish: the stem rides one hop in the row
        ds = ds.map_batches(
            SeparateActor, fn_constructor_args=(settings,), compute=pool(size=res.separate_actors), batch_size=1,
            batch_format="pyarrow", num_cpus=res.actor_cpus,
        )  # fmt: skip
    return ds.map_batches(
        FinishActor, fn_constructor_args=(settings, out), compute=pool(size=res.tts_actors), batch_size=1,
        batch_format="pyarrow", num_cpus=res.actor_cpus,
    )  # fmt: skip
