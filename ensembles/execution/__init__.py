"""Where and how members run: planning, local process pool, dask submission, progress."""
