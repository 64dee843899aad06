"""Small test models run fastest on one thread (and 2-core CI machines are shared)."""
import torch

torch.set_num_threads(1)
