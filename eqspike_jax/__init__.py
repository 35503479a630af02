"""eqspike-jax: Equilibrium Propagation and EqSpike (spike-driven EP) in JAX."""

__version__ = "0.1.0"
