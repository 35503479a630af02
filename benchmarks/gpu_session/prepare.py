r"""Builds what one GPU session's call carries: the data and the packages the GPU image lacks.

  python -m benchmarks.gpu_session.prepare          # here, with TFDS_DATA_DIR set (after make install)

then, in a session lent the GPU, one call of the device tool:

  run(command="bash benchmarks/gpu_session/go.sh", carry=[".gpu", ".whl"], timeout_s=600)

The GPU image has jax, flax, optax, chex, orbax and tensorboard but neither TensorFlow nor
tensorflow-datasets nor ml_collections, and no network. So the decoded splits travel as the data
cache's own checksummed entries (``data.export_entry``, compressed: 41 MB for MNIST and
Fashion-MNIST) under the key ``KEY``, which ``go.sh`` sets as ``$EQSPIKE_JAX_DATA_KEY``, and
ml_collections travels as a wheel. Both folders are ignored by git.
"""

import os
import subprocess
import sys

from eqspike_jax import data

KEY = "gpucarry000000000000"  # go.sh sets the same.
CACHE = ".gpu/cache"
WHEELS = ".whl"
DATASETS = ("mnist", "fashion_mnist")


def main():
  for name in DATASETS:
    for split in ("train", "test"):
      print(data.export_entry(name, split, CACHE, KEY))
  subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                  "--python-version", "3.12", "--implementation", "cp", "-d", WHEELS,
                  "ml_collections==1.1.0"], check=True)
  print(WHEELS, sorted(os.listdir(WHEELS)))


if __name__ == "__main__":
  main()
