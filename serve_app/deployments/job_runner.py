"""``JobRunner``: hosts the ``JobWorker`` (one replica); jobs run there as background threads, never inside an
HTTP request, with every stage call going to its own deployment through the handle adapters."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from configs.settings import Settings
from serve_app.deployments.adapters import HandleASR, HandleDiarizer, HandleSeparator, HandleTranslator, HandleTTS
from serve_app.deployments.model_deployments import settings_from

if TYPE_CHECKING:
    from pipelines.runner import Pipeline
    from serve_app.bridge.embedded import BackgroundBridge
    from serve_app.jobs import JobWorker

logger = logging.getLogger(__name__)


class JobRunner:
    """Hosts the ``JobWorker`` next to the model deployments (run it with ONE replica per job store).

    The worker's threads claim queued jobs from the store and run ``Pipeline`` with the handle adapters,
    so every stage call goes to its own autoscaled deployment. ``pipeline_factory`` may be injected (tests).
    """

    def __init__(
        self,
        settings: Settings | Mapping[str, Any] | None = None,
        asr: Any = None,
        translator: Any = None,
        tts: Any = None,
        separator: Any = None,
        diarizer: Any = None,
        *,
        pipeline_factory: Any = None,
        poll_s: float = 0.5,
    ) -> None:
        from serve_app.jobs import JobWorker
        from serve_app.jobs.retention import start_retention
        from serve_app.jobs.wiring import build_job_service

        self.settings = s = settings_from(settings)
        self.service = build_job_service(s)
        self.store, self.storage = self.service.store, self.service.storage
        handles = (asr, translator, tts, separator, diarizer)
        factory = pipeline_factory or (lambda: self._pipeline(*handles))
        self.worker: JobWorker | None = None
        # queue.mode = "rabbitmq" without queue.enabled: bridge instances run the jobs, this app only publishes.
        if s.queue.mode == "local" or s.queue.enabled:
            self.worker = JobWorker(
                self.service, factory, max_running_jobs=s.service.max_running_jobs, poll_s=poll_s,
                lease_s=s.service.job_lease_s,
            )  # fmt: skip
            self.worker.start()  # requeues jobs whose lease expired (a dead process); they resume from the stage cache
        self.retention = start_retention(s, self.store, self.storage)
        self.consumer: BackgroundBridge | None = None
        if s.queue.enabled:  # the RabbitMQ consumer in this replica, next to the worker that runs its jobs
            from serve_app.bridge.embedded import BackgroundBridge
            from serve_app.bridge.methods import PipelineModels

            self.consumer = BackgroundBridge(s, self.service, models=PipelineModels(factory))
            self.consumer.start()

    def _pipeline(self, asr: Any, translator: Any, tts: Any, separator: Any, diarizer: Any) -> Pipeline:
        """The runner over the handles given (a stage without one runs in this process). The runner decides what
        runs: the separator only for a dub with background 'separate' whose stem is not cached, the diarizer only
        with diarize.enabled and no cached result."""
        from pipelines.runner import Pipeline

        return Pipeline(
            self.settings,
            asr=HandleASR(asr) if asr is not None else None,
            translator=HandleTranslator(translator) if translator is not None else None,
            tts=HandleTTS(tts) if tts is not None else None,
            separator=HandleSeparator(separator) if separator is not None else None,
            diarizer=HandleDiarizer(diarizer) if diarizer is not None else None,
        )

    def ready(self) -> bool:
        return (self.worker is None or self.worker.running) and (self.consumer is None or self.consumer.connected)

    def shutdown(self) -> None:
        """Stop taking jobs. A job still running is put back in the queue (the model deployments are going
        away with this app), so the next start resumes it from its last finished stage."""
        if getattr(self, "_shut_down", False):
            return
        self._shut_down = True
        consumer = getattr(self, "consumer", None)
        if consumer is not None:  # first, so no message is taken in while the worker stops
            consumer.stop()
        retention = getattr(self, "retention", None)
        if retention is not None:
            retention.stop(timeout=1.0)
        worker = getattr(self, "worker", None)
        if worker is not None:
            # This replica's jobs only (others may share the store); the threads drop them at their next stage.
            worker.stop(timeout=0, requeue=True)
            worker.stop(timeout=5.0)

    def __del__(self) -> None:  # Serve calls this when the replica shuts down gracefully
        try:
            self.shutdown()
        except Exception:  # never raise from a destructor
            logger.exception("job runner shutdown failed")
