"""Training tree of the Planet Terrain default model (torch at the edge; the plugin core stays torch-free)."""
import os as _os

# numpy's BLAS threads fight torch's for the same 2 cores: the small matrices of augmentation and resizing
# are fastest single-threaded (measured: 5 ms vs 9 ms per augmented image). Only effective when this package
# is imported before numpy (as with `python -m training.train`); harmless otherwise.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
