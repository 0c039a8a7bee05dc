"""Actor pools fitted to the cluster: every pool alive at once, GPUs shared when the settings ask for none."""

from __future__ import annotations

from configs.settings import Settings
from pipelines.batch.resources import plan_resources


def test_resources_fit_two_cores_and_use_gpus_when_present() -> None:
    b = Settings(_env_file=None).batch
    two = plan_resources(b, cluster_cpus=2, cluster_gpus=0)
    assert (two.asr_actors, two.translate_actors, two.tts_actors) == (1, 1, 1)
    assert 3 * two.actor_cpus + two.task_cpus <= 2 and two.task_cpus != two.actor_cpus and two.asr_gpus == 0
    big = plan_resources(b.model_copy(update={"asr_actors": 4, "translate_actors": 2}), cluster_cpus=64, cluster_gpus=8)
    assert big.actor_cpus == 1.0 and big.asr_gpus == big.translate_gpus == 1.0
    shared = plan_resources(b, cluster_cpus=16, cluster_gpus=1)
    assert shared.asr_gpus == shared.translate_gpus == 0.5  # one GPU, two pools: both must fit
    asked = plan_resources(b.model_copy(update={"num_gpus_per_actor": 0.25}), cluster_cpus=4, cluster_gpus=0)
    assert asked.asr_gpus == asked.translate_gpus == 0.25


def test_diarize_and_separate_pools_only_when_the_batch_needs_them() -> None:
    """Issue 15: diarization (diarize.enabled) and separation (a dub with background 'separate', its own or the
    setting's) are pools of their own; a stage nobody needs gets no actors, and the CPUs go to the others."""
    from pipelines.batch.resources import optional_stages
    from pipelines.schema import JobRequest

    s = Settings(_env_file=None)
    dub = JobRequest(input="a.mp4", target_languages=["ru"])
    subs = JobRequest(input="b.mp4", target_languages=["ru"], mode="subtitles")
    duck = JobRequest(input="c.mp4", target_languages=["ru"], background="duck")
    assert s.mix.background == "separate" and optional_stages([dub, subs], s) == {"diarize": True, "separate": True}
    assert optional_stages([subs, duck], s)["separate"] is False
    quiet = s.model_copy(update={"diarize": s.diarize.model_copy(update={"enabled": False}),
                                 "mix": s.mix.model_copy(update={"background": "duck"})})  # fmt: skip
    assert optional_stages([dub], quiet) == {"diarize": False, "separate": False}
    asked = JobRequest(input="d.mp4", target_languages=["ru"], background="separate")
    assert optional_stages([asked], quiet)["separate"] is True  # the job's own choice wins over the setting

    all_five = plan_resources(s.batch.model_copy(update={"diarize_actors": 2}), cluster_cpus=2, cluster_gpus=1,
                              diarize=True, separate=True)  # fmt: skip
    assert (all_five.diarize_actors, all_five.separate_actors) == (2, 1)
    assert 6 * all_five.actor_cpus + all_five.task_cpus <= 2  # every pool alive at once
    assert all_five.asr_gpus == all_five.translate_gpus == 0.5  # the CPU stages take no GPU share
    three = plan_resources(s.batch, cluster_cpus=2, cluster_gpus=0)
    assert (three.diarize_actors, three.separate_actors) == (0, 0) and three.actor_cpus > all_five.actor_cpus
