"""Vocabulary-parallel cross-entropy over torch.distributed: each process
holds a slice of the classifier's classes (uneven slices are fine) and
xent.torch.vocab_parallel_cross_entropy needs one collective per step.

    python -m torch.distributed.run --nproc_per_node 2 examples/vocab_parallel.py

(`make test` runs it on 2 processes when torch is installed.) Each rank
checks its loss and its shard's gradient against F.cross_entropy on the
whole logits, which every rank can make here from the same seed."""
import os
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import xent.torch as xt  # noqa: E402

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
rows, vocab = 64, 1003
hidden, weight = torch.randn(rows, 32), torch.randn(vocab, 32) / 6
target = torch.randint(0, vocab, (rows,))
target[::9] = -100

# This rank's classes: an uneven split of the vocabulary.
bounds = [vocab * r // world for r in range(world + 1)]
lo, hi = bounds[rank], bounds[rank + 1]
w_shard = weight[lo:hi].clone().requires_grad_()
logits_shard = hidden @ w_shard.T  # (rows, hi - lo): this rank's columns

loss = xt.vocab_parallel_cross_entropy(logits_shard, target, lo, vocab, label_smoothing=0.1)
loss.backward()  # w_shard.grad: this rank's slice of the weight's gradient

# The same on one process, for the check.
w_full = weight.clone().requires_grad_()
ref = F.cross_entropy(hidden @ w_full.T, target, label_smoothing=0.1)
ref.backward()
torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-6)
torch.testing.assert_close(w_shard.grad, w_full.grad[lo:hi], rtol=1e-4, atol=1e-6)
print(f"rank {rank}/{world}: classes [{lo}, {hi}), loss {loss.item():.6f}: ok")
dist.destroy_process_group()
