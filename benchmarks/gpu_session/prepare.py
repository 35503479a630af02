r"""Builds what one GPU session's call carries: the data and the packages the GPU image lacks.

  python -m benchmarks.gpu_session.prepare          # here, with TFDS_DATA_DIR set (after make install)

then, in a session lent the GPU, one call of the device tool:

  run(command="bash benchmarks/gpu_session/go.sh", carry=[".gpu", ".whl"], timeout_s=600)

The GPU image has jax, flax, optax, chex, orbax and tensorboard but neither TensorFlow nor
tensorflow-datasets nor ml_collections, and no network. So the decoded splits are carried as the
data cache's own checksummed entries (compressed: 41 MB for MNIST and Fashion-MNIST), keyed by a
fixed fingerprint that ``run.py`` supplies in place of the prepared TFDS copy's, and
ml_collections travels as a wheel. Both folders are ignored by git.
"""

import os
import subprocess
import sys

import numpy as np

from eqspike_jax import data

FINGERPRINT = "gpucarry000000000000"
CACHE = ".gpu/cache"
WHEELS = ".whl"
DATASETS = ("mnist", "fashion_mnist")


def carry_split(name: str, split: str) -> str:
  """Writes ``name``'s ``split`` as a compressed cache entry under the fixed fingerprint."""
  data.load_split(name, split)  # Decodes through TFDS once and fills this machine's cache.
  fingerprint = data._prepared_fingerprint(name, data.resolve_data_dir(None))  # pylint: disable=protected-access
  raw = data._read_entry(data._cache_path(name, split, fingerprint))  # pylint: disable=protected-access
  if raw is None:
    raise RuntimeError(f"no cache entry for {name} {split}: is {data.CACHE_ENV} off?")
  images, labels, num_classes = raw
  os.makedirs(CACHE, exist_ok=True)
  path = os.path.join(CACHE, f"{name}_{split}-{FINGERPRINT}.npz")
  with open(path, "wb") as f:
    np.savez_compressed(f, images=images, labels=labels, num_classes=num_classes,
                        checksum=data._payload_digest(images, labels, num_classes))  # pylint: disable=protected-access
  return path


def main():
  for name in DATASETS:
    for split in ("train", "test"):
      print(carry_split(name, split))
  subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                  "--python-version", "3.12", "--implementation", "cp", "-d", WHEELS,
                  "ml_collections==1.1.0"], check=True)
  print(WHEELS, sorted(os.listdir(WHEELS)))


if __name__ == "__main__":
  main()
