"""Measurements of trained EqSpike runs, which read run directories through ``workdir``.

* ``energy``: the energy model, pure arithmetic on typed event counts (``events.StepEvents``)
  and on rate EP's operation and memory counts: constants, chip and GPU profiles, scenarios.
* ``energy_report``: the event counts of a trained network (measured, or read from a run
  summary) and the report and table built from them.
* ``stdp``: the spike-timing dependence of the rule, for an isolated synapse and in vivo.
* ``trajectories``: one example's spikes and states through the phases of a training step.
* ``reports``: where a report is written (a read-only workdir is left alone).

None of them imports the trainer: a run's config and parameters come from ``eqspike_jax.workdir``.
"""
