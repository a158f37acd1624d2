"""7. What the results say: statistics, tables, intervals, convergence, sensitivity, plots.

Every function takes an ensemble's xarray objects (from ``compute()``, ``to_zarr()`` or
``open_ensemble``), reduces over member dims lazily with dask, and uses only members whose
status is ok. ``kernels`` is the engine on plain numpy/dask arrays, ``reduce`` the xarray
layer over it, ``intervals`` confidence intervals with per-position member counts, and
``accessor`` the ``.ens`` front door that only delegates.
"""
