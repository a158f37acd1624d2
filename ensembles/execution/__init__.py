"""5. Running members somewhere: planning, the worker side, submission, progress.

``planning`` fixes the output schema and the blocks (probing first members);
``worker`` is what runs on a worker (a block of members); ``graph`` builds the lazy dask
graph; ``dispatch`` runs blocks into memory or a store and reports; ``submit`` and
``clients`` talk to dask.distributed; ``progress`` shows what is happening; ``wire`` is
the pickle-free result format of safe mode.
"""
