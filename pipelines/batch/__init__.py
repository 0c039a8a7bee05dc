"""Bulk translation on Ray Data: ``python -m pipelines.batch --input DIR|manifest.jsonl --to ru --output DIR``.

The one package of ``pipelines`` that uses Ray, and only inside functions: importing any of its modules
leaves Ray out of ``sys.modules``. The dataset flows, one row per file or per audio chunk:

1. read the input list (a folder or a manifest.jsonl, local or ``s3://``) and skip what is done;
2. extract the audio to a WAV and cut it at VAD boundaries into chunks of at most ``batch.chunk_max_s``
   (tasks; the WAV is read a window, then a chunk, at a time, and each chunk row streams on alone);
3. ASR on an actor pool (``map_batches``, ``ActorPoolStrategy``; GPUs when the cluster has them);
4. regroup the chunks per file, in order, and rebuild one transcript (one small stateful actor, so
   files stream on without a global shuffle);
5. speaker diarization on an actor pool (while ``diarize.enabled``), through the runner's stage cache;
6. translation on an actor pool, through the runner's stage cache;
7. source separation on an actor pool (when a dub has background 'separate'), through the stage cache;
8. TTS, timing fit, mix and mux on an actor pool, through the same ``Pipeline.run`` as the CLI with the
   transcript, speakers, translations and background stem given.

The stage classes are the CLI's. A bad file becomes a ``failed`` line in ``OUTDIR/manifest.jsonl``;
the exit code is the number of failed inputs (at most 100), 125 when the batch could not start.

Modules, one concern each:

* :mod:`~pipelines.batch.inputs` - the input list (a folder or a manifest.jsonl) as job requests;
* :mod:`~pipelines.batch.manifest` - ``OUTDIR/manifest.jsonl`` and ``summary.json``;
* :mod:`~pipelines.batch.resume` - which earlier results still stand on a rerun;
* :mod:`~pipelines.batch.resources` - actor pool sizes and CPU/GPU asks for the cluster;
* :mod:`~pipelines.batch.rows` - the Arrow rows passed between the stages;
* :mod:`~pipelines.batch.actors` - the extract task and the ASR, regroup, diarize, translate, separate and finish
  actors;
* :mod:`~pipelines.batch.dataset` - the lazy Ray Data pipeline over them;
* :mod:`~pipelines.batch.driver` - the Ray session, the run loop and its signals;
* :mod:`~pipelines.batch.cli` - the command line (``__main__`` runs it);
* :mod:`~pipelines.batch.chunking` and :mod:`~pipelines.batch.storage_uri` - audio chunks at VAD
  boundaries, and storage roots as local paths or ``s3://`` URIs (plain Python).
"""
