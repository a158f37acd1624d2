"""3. How one member runs: the simulation contract and its adapters.

``contract`` says how a simulation is called for one member (``seed`` or ``rng``);
``schema`` says what it returns (declared or probed outputs); ``model_class`` and ``mesa``
run model classes and Mesa models; ``command`` runs external programs
(``command_templates`` fills their arguments, ``programs`` starts them, ``output_files``
reads what they write).
"""
