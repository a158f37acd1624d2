"""2. Who runs: design points times seeds, each member's seed, and blocks of members.

A member is one design point run with one seed index. ``seeds`` derives every member's
seed from the root seed, its parameter values and its seed index (never from scheduling);
``blocks`` lays members on a grid (design dims + ``seed``) cut into rectangular blocks,
the unit of work and of storage, works out one member's parameters and seed for it
alone, and refuses at once a design whose bookkeeping cannot fit in memory.
"""
