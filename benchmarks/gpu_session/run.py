"""On the GPU machine: runs a launch module with the data read from the carried cache.

The carried cache entries hold the same checksummed arrays as this machine's TFDS cache; the
prepared TFDS copy (and TensorFlow) are not on the GPU machine, so the fingerprint that keys the
cache is fixed here (benchmarks/gpu_session/prepare.py writes the entries under it).

  python3 benchmarks/gpu_session/run.py launch.train --config ... --workdir ...
"""
import os
import runpy
import sys

sys.path.insert(0, os.getcwd())
from benchmarks.gpu_session.prepare import FINGERPRINT  # pylint: disable=g-import-not-at-top,wrong-import-position
from eqspike_jax import data  # pylint: disable=g-import-not-at-top,wrong-import-position

data._prepared_fingerprint = lambda name, data_dir: FINGERPRINT  # pylint: disable=protected-access
module = sys.argv[1]
sys.argv = [module] + sys.argv[2:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
