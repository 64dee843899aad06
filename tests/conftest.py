"""Small test models run fastest on one thread (and 2-core CI machines are shared)."""
import os

import torch

torch.set_num_threads(1)
os.environ.setdefault("HSICKIT_THREADS", "1")  # what `hsickit` commands run in-process choose (core/threads.py)
