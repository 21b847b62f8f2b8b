"""Inference-only rewrites of a trained network that leave its outputs unchanged.

A batch normalisation in eval mode is a fixed per-channel scale and shift, so it can be folded into
the convolution before it: one kernel instead of two, and one full read and write of the
activations less (on a GPU the detector's BatchNorms cost as much memory traffic as its ReLUs).
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_PAIRS = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d))


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a convolution in an ``nn.Sequential`` into it,
    in place (the BatchNorm becomes an identity). Only for a module in eval mode."""
    if module.training:
        raise ValueError("fold_batchnorm is for inference: put the module in eval mode first")
    for sequence in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        children = list(sequence.named_children())
        for (name, conv), (bn_name, bn) in zip(children, children[1:]):
            if any(isinstance(conv, c) and type(bn) is b for c, b in _PAIRS) and bn.track_running_stats:
                setattr(sequence, name, fuse_conv_bn_eval(conv, bn))
                setattr(sequence, bn_name, nn.Identity())
    return module
