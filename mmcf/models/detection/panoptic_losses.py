"""The auxiliary panoptic losses of Eq. 7 (§4.1.5), plain torch.

§4.1.5 takes ``L^aux`` from MaX-DeepLab [85] and kMaX-DeepLab [95]: a
weighted sum of a PQ-style loss, a mask-ID cross-entropy, an instance
discrimination loss and a semantic segmentation loss. Each is a function
here, on plain tensors, so that a test can check it against a hand-made
example; :class:`~mmcf.models.detection.ClusterFormerPanopticHead` builds
their inputs from its predictions and the Hungarian matching.

Conventions: ``-1`` marks pixels that belong to no (matched) segment, the
semantic target uses ``ignore_index`` (255, mmdet's VOID). Every function
returns a scalar that is zero, with a graph, when it has nothing to average.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def _zero(like: Tensor) -> Tensor:
    return like.sum() * 0.0


def soft_dice(pred: Tensor, target: Tensor, eps: float = 1.0) -> Tensor:
    """Dice coefficient of soft masks, row by row: ``pred`` and ``target``
    (M, N) -> (M,), ``(2 sum(p t) + eps) / (sum(p) + sum(t) + eps)``."""
    inter = (pred * target).sum(-1)
    return (2 * inter + eps) / (pred.sum(-1) + target.sum(-1) + eps)


def pq_style_loss(mask_probs: Tensor, gt_masks: Tensor, matched_probs: Tensor,
                  unmatched_probs: Tensor, alpha: float = 0.75, eps: float = 1.0) -> Tensor:
    """MaX-DeepLab's PQ-style loss (its Eq. 8-10).

    PQ of a matched pair is (class probability) x (mask similarity); the loss
    raises both, each weighted by the other, held fixed::

        L_pos = mean_i [ p_i' (1 - Dice_i) - Dice_i' log p_i ]     (' : detached)
        L_neg = mean_j [ -log(1 - q_j) ]
        L_PQ  = alpha L_pos + (1 - alpha) L_neg

    with ``Dice_i`` the soft dice of matched center i's mask-ID probability
    map and its segment, ``p_i`` its probability of the segment's class,
    ``q_j`` an unmatched center's probability of being an object (MaX-DeepLab
    writes ``-log p(no object)``; with sigmoid classes ``p(no object) = 1 -
    q``). ``(1 - Dice)`` instead of MaX-DeepLab's ``-Dice`` gives the same
    gradient and a non-negative value.

    Args:
        mask_probs: (M, N) mask-ID probabilities of the matched centers
            (softmax over all centers, per pixel).
        gt_masks: (M, N) their segments, 0/1.
        matched_probs: (M,) each matched center's probability of its segment's class.
        unmatched_probs: (U,) the object probability of each unmatched center.
        alpha: weight of the matched term (0.75 in MaX-DeepLab).
    """
    loss = _zero(mask_probs) + _zero(matched_probs) + _zero(unmatched_probs)
    if mask_probs.shape[0] > 0:
        dice = soft_dice(mask_probs, gt_masks.to(mask_probs.dtype), eps)
        p = matched_probs.clamp_min(1e-6)
        pos = p.detach() * (1 - dice) - dice.detach() * p.log()
        loss = loss + alpha * pos.mean()
    if unmatched_probs.numel() > 0:
        neg = -(1 - unmatched_probs).clamp_min(1e-6).log()
        loss = loss + (1 - alpha) * neg.mean()
    return loss


def mask_id_cross_entropy(mask_logits: Tensor, target: Tensor) -> Tensor:
    """MaX-DeepLab's mask-ID cross-entropy: every pixel is classified among
    the K centers (softmax over K of the mask logits) and should pick the
    center matched to its segment.

    Args:
        mask_logits: (B, K, h, w).
        target: (B, h, w) index of the center matched to each pixel's segment,
            -1 where there is none (void, crowd, unmatched segments).
    """
    if not (target >= 0).any():
        return _zero(mask_logits)
    return F.cross_entropy(mask_logits.float(), target, ignore_index=-1)


def instance_discrimination_loss(features: Tensor, segments: Tensor,
                                 temperature: float = 0.3,
                                 num_points: Optional[int] = None,
                                 generator: Optional[torch.Generator] = None) -> Tensor:
    """MaX-DeepLab's instance discrimination: a contrastive loss on the
    per-pixel features. In each image, every ground-truth segment ``s`` has
    the embedding ``t_s = normalise(mean of the normalised pixel features in
    s)``; a pixel ``p`` of ``s`` should pick ``s`` among the image's
    segments::

        L = mean_p  -log softmax_s( <f_p, t_s> / temperature )[s(p)]

    Args:
        features: (B, D, h, w) per-pixel features (the mask features F).
        segments: (B, h, w) segment index of each pixel, -1 for void.
        temperature: 0.3 as in kMaX-DeepLab.
        num_points: at most this many pixels per image, drawn at random
            (None: all).
    """
    losses = []
    for feat, seg in zip(features, segments):
        f = F.normalize(feat.float().flatten(1).t(), dim=-1)  # (N, D)
        seg = seg.flatten()
        valid = torch.nonzero(seg >= 0).squeeze(1)
        if valid.numel() == 0:
            continue
        ids, inverse = torch.unique(seg[valid], return_inverse=True)
        onehot = F.one_hot(inverse, len(ids)).to(f.dtype)  # (Nv, S)
        embeds = F.normalize(onehot.t() @ f[valid], dim=-1)  # mean up to scale
        pick = torch.arange(valid.numel(), device=f.device)
        if num_points is not None and valid.numel() > num_points:
            pick = torch.randperm(valid.numel(), generator=generator,
                                  device='cpu')[:num_points].to(f.device)
        logits = f[valid[pick]] @ embeds.t() / temperature
        losses.append(F.cross_entropy(logits, inverse[pick]))
    if not losses:
        return _zero(features)
    return torch.stack(losses).mean()


def semantic_cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
    """Per-pixel cross-entropy of semantic logits (B, C, h, w) against class
    labels (B, h, w), ``ignore_index`` pixels left out (MaX-DeepLab's
    semantic head loss)."""
    if not (target != ignore_index).any():
        return _zero(logits)
    return F.cross_entropy(logits.float(), target, ignore_index=ignore_index)
