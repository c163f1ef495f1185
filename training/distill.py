"""Distillation (issue 20, lever 5): a teacher's averaged views taught to one student network.

Test-time augmentation or an ensemble buys accuracy at several networks' cost in the plugin; distillation moves
that gain into one network's cost. The teacher is a finished checkpoint of the same classes and outputs (a
run, a CV fold, an ensemble from :mod:`training.ensemble`); on every training batch it sees exactly the images
the student sees (augmented and mixed), in ``views`` dihedral transforms (:data:`training.inference.TTA_VIEWS`),
and the student matches the averaged logits' softened distribution (Hinton et al. 2015) beside its labels.
"Other" images are distilled too: the teacher's near-uniform output there is outlier exposure in soft form.

In cross-validation each fold's student must learn from the teacher trained on the same fold's sources (a
teacher that saw the fold's test images would leak them): ``distill_teacher`` may hold ``{fold}``
(:data:`training.cv.FOLD_FIELD`), which :func:`training.cv.fold_config` fills in.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .inference import TTA_VIEWS


def dihedral_t(x: torch.Tensor, k: int) -> torch.Tensor:
    """``augment.dihedral`` on a tensor batch (the same k: rotations of the last two axes, then a flip)."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the distributions softened by ``temperature``, times its square (so that the
    gradient's size does not shrink as the temperature grows)."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, dim=1), F.softmax(teacher / t, dim=1),
                    reduction="batchmean") * t * t


class Teacher:
    """A frozen network whose logits, averaged over ``views`` dihedral transforms, the student learns."""

    def __init__(self, net: torch.nn.Module, views: int, precision, device: torch.device):
        if views not in TTA_VIEWS:
            raise ValueError(f"distill_views is {views}; choose one of {sorted(TTA_VIEWS)}")
        self.net = precision.place(net, device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.views, self.precision, self.device = TTA_VIEWS[views], precision, device

    @classmethod
    def load(cls, path: str | Path, outputs: int, views: int, precision, device: torch.device) -> "Teacher":
        """The checkpoint at ``path``; refused unless it has the student's ``outputs`` (same classes and the
        same way of teaching "other")."""
        from . import checkpoint
        from .model import output_count

        if not Path(path).is_file():
            raise FileNotFoundError(f"distillation teacher '{path}' not found: train it first (make train, or "
                                    "make cv for the teacher's arm), or correct distill_teacher")
        net, cfg, contract, _ = checkpoint.load_model(path)
        theirs = output_count(cfg, contract.num_classes)
        if theirs != outputs:
            raise ValueError(f"distillation teacher '{path}' has {theirs} outputs, the student {outputs}: give a "
                             "teacher trained with the student's classes and outlier_mode")
        return cls(net, views, precision, device)

    @torch.no_grad()
    def logits(self, xb: torch.Tensor) -> torch.Tensor:
        outs = self.precision.forward(self.net, [dihedral_t(xb, k) for k in self.views], self.device)
        return torch.stack(outs).mean(0)
