"""Ready-made simulations that follow the :mod:`ensembles.simulations.contract` contract.

Each model lives in its own submodule, imported on demand (nothing heavy happens when this
package is imported):

``ensembles.models.ising``
    The 2D Ising model on an ``L x L`` periodic square lattice, simulated with a
    numba-compiled, branch-free checkerboard Metropolis kernel that releases the GIL;
    outputs ``M`` and ``E`` per spin on the ``sweep`` dimension, plus the exact
    infinite-lattice results (:func:`~ensembles.models.ising.critical_temperature`,
    :func:`~ensembles.models.ising.onsager_magnetization`,
    :func:`~ensembles.models.ising.exact_energy`). Use it as ``ising.simulate`` or by
    path as ``"ensembles.models.ising:simulate"``.

Examples
--------
>>> from ensembles.models import ising
>>> ising.simulate.name
'ensembles.models.ising:simulate'
"""
