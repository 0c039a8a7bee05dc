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
