"""Devices of a run: multi-process start-up, the data-parallel mesh, replicated arrays."""

from typing import Optional

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

AXIS = "devices"  # The mesh axis the batch is split over.


def initialize_distributed(coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None) -> None:
  """Joins a multi-process (multi-host) run; call it before anything touches a device.

  Every process runs the same command on the same workdir (a filesystem they all see, as orbax
  needs), loads the whole (small) dataset and feeds its own devices their slice of every global
  batch. Without arguments JAX finds the cluster itself (SLURM, Cloud TPU, ...); otherwise give
  the first process's ``host:port`` and each process's index. On CPUs the collectives go
  through gloo.
  """
  # Only the CPU backend reads this; accelerators bring their own collectives.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  logging.info("Process %d of %d; devices: %s", jax.process_index(), jax.process_count(),
               jax.devices())


def resolve_num_devices(config) -> int:
  """``config.num_devices``, 0 meaning every device (of every process); checks the batch divides."""
  available = jax.device_count()
  n = config.num_devices or available
  if n > available:
    raise ValueError(f"config.num_devices = {config.num_devices}: only {available} devices are "
                     f"visible ({jax.devices()}).")
  if jax.process_count() > 1 and n != available:
    raise ValueError(f"config.num_devices = {config.num_devices}: a run over "
                     f"{jax.process_count()} processes uses all {available} of their devices; "
                     f"set num_devices to 0.")
  if config.batch_size % n:
    raise ValueError(f"config.batch_size = {config.batch_size} does not divide over {n} devices "
                     f"(config.num_devices = {config.num_devices}, 0 meaning all): choose a "
                     f"batch size that is a multiple of {n}, or set num_devices.")
  return n


def make_mesh(num_devices: int) -> Optional[jax.sharding.Mesh]:
  """A 1-D mesh of the first ``num_devices`` devices of every process; None for one device.

  With several processes (``jax.distributed.initialize``) the mesh spans all their devices, so
  every global batch is split over every host's devices.
  """
  if num_devices == 1:
    return None
  # Auto axes let jit split each chunk's index array across the devices as it goes in.
  return jax.make_mesh((num_devices,), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:num_devices])


def mesh_devices(mesh: Optional[jax.sharding.Mesh]):
  """The devices a run trains on (what its provenance records)."""
  return jax.devices()[:1] if mesh is None else list(mesh.devices.flat)


def replicate(tree, mesh: Optional[jax.sharding.Mesh]):
  """Places ``tree`` on every device of ``mesh`` once, so no call copies it again.

  Every process holds the same values (the same data, the same seed), so each fills its own
  devices from its copy; this also works when the mesh spans several hosts.
  """
  if mesh is None:
    return jax.tree.map(jnp.asarray, tree)
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

  def put(leaf):
    value = np.asarray(leaf)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

  return jax.tree.map(put, tree)
