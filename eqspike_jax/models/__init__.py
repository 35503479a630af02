"""The models of the registry (``eqspike_jax.registry``): each a dynamics and a gradient estimate.

Each model has a jax-free ``*_section`` module (its config section's defaults and validation,
which config files and the registry read without importing jax) and a model module.
"""
