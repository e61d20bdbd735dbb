"""Batched, per-sample augmentation on the training device, distributed like :mod:`datamodules.transforms`.

:class:`DeviceAugment` ``(kind)`` maps a uint8 batch ``[B, 3, H, W]`` (CPU or CUDA) to the float32,
normalised batch that ``build_transform(kind, ...)`` (torchvision transforms v2) would give sample
by sample — every sample with its own random parameters — in a handful of batched tensor ops and no
Python loop over samples. It is meant for ``augment_on: device``: the uint8 training set lives on the
device and ``on_after_batch_transfer`` calls it once per view.

Parameters. :func:`sample_params` draws every random parameter of a batch from one CPU
``torch.Generator`` seeded with ``seed`` (never the global RNG), with torchvision's own rules:

* ``supervised`` — ``RandomCrop(size, padding=4)``: ``top``/``left`` uniform integers in
  ``[0, H + 8 - size]`` (positions in the zero-padded image); ``RandomHorizontalFlip``: flip iff
  ``U < 0.5``; ``RandomVerticalFlip`` likewise when ``vflip``.
* ``contrastive`` — ``RandomResizedCrop(size, scale=(0.2, 1), ratio=(3/4, 4/3))``: ten attempts of
  ``area·U(scale)`` and ``exp(U(log ratio))``, ``w = round(sqrt(a·r))``, ``h = round(sqrt(a/r))``
  (round half to even, as Python's ``round``), the first attempt with ``0 < w <= W, 0 < h <= H``
  wins and ``top``/``left`` are uniform integers; if none fits, torchvision's central-crop fallback.
  ``RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)``: applied iff ``U < 0.8``; brightness,
  contrast and saturation factors ``U(0.6, 1.4)``, hue ``U(-0.1, 0.1)`` (turns), and a random
  permutation of the four ops **per sample**. ``RandomGrayscale(p=0.2)``: iff ``U < 0.2``.
* ``none`` — nothing to draw.

The same seed gives the same parameters on every device (they are drawn on the CPU and then moved),
so ``forward(images, seed=s)`` is a pure function of ``(images, s)``. Sample ``i`` of a batch gets
the ``i``-th draw: the caller makes a run repeatable (and resumable) by deriving ``seed`` from (run
seed, epoch, batch, view, rank). The draws are not those of the loader path, whose augmentation is
seeded per sample: same distribution, different images.

Application. torchvision runs the whole pipeline on **uint8** images, so every colour op rounds
down to an integer (``.to(uint8)`` truncates) and the grey images used by contrast and saturation
are floored. The batched ops below keep float32 values in ``[0, 255]`` and floor after every op the
same way, so they reproduce torchvision's values, not just its formulas:

* crop + pad: one ``gather`` per axis from the zero-padded batch (exact).
* flips: ``torch.where`` with the flipped batch (exact).
* RandomResizedCrop: one batched separable resample ``Wy @ (x @ Wx^T)`` (two batched matmuls over
  the whole image, no per-sample crop) whose per-sample weight matrices are ATen's antialiased
  bilinear weights (``_upsample_bilinear2d_aa``: triangle filter of support ``max(scale, 1)``,
  ``scale = crop / size``, half-pixel centres, window clipped to the crop and renormalised). For an
  upscale (every crop of a 32x32 image, since a crop is at most the image) these weights *are* plain
  bilinear with edge clamping, so ``antialias=True`` changes nothing there; for a downscale (larger
  inputs) they are the antialiased weights, not plain bilinear. torchvision resizes uint8 images on
  an AVX2/AVX512/ARM CPU with ATen's native uint8 kernel: a horizontal pass rounded to uint8, then a
  vertical pass, in fixed point with round-half-up. The passes here do the same in float32, which
  gives torchvision's pixels exactly when upscaling and to one level in <1% of pixels when
  downscaling (ATen quantises the weights to int16). (A single float pass with one rounding — what
  torchvision does on CUDA or an older CPU — differs from the CPU kernel by one level in ~16% of the
  pixels of an upscale, mean -0.04 level.)
* brightness / contrast / saturation / grayscale: torchvision's uint8 kernels written batched with a
  per-sample factor (``x·f``, blends with the floored grey / its mean, grey weights
  ``0.2989, 0.587, 0.114``, clamp to ``[0, 255]``, floor). Bit-equal except a float32 rounding in a
  rare pixel (one level).
* hue: :func:`kornia.enhance.adjust_hue` on ``x/255`` with a per-sample angle ``2π·hue`` (kornia works
  in radians, torchvision in turns), then torchvision's float→uint8 rule ``floor(255.999·y)``.
* conversion + normalisation: ``x·(1/255)``, ``(x - mean) / std`` exactly as ``ToDtype``/``Normalize``.

Why not kornia's augmentation classes (checked against kornia 0.9.0; the pin allows 0.7–0.x):

* ``kornia.augmentation.ColorJitter`` (the torchvision-compatible class, not ``ColorJiggle``) has the
  right factor ranges (``0.4`` → ``[0.6, 1.4]``, hue ``0.1`` → ``[-0.1, 0.1]`` turns, converted to
  radians internally) and torchvision's formulas (brightness multiplies; contrast blends with the
  mean of the grey image; saturation blends with the grey image; each step clamps to ``[0, 1]``), but
  (1) it draws **one op order per batch** (``randperm(4)`` per call) where torchvision draws one per
  sample; (2) it works on float images without torchvision's uint8 truncation between ops (a bias of
  about −0.5/255 per op in torchvision that kornia lacks); (3) its grey uses ``0.299`` (BT.601) where
  torchvision uses ``0.2989``; (4) it draws from the global RNG. So the parameters are ours and the
  four ops are applied per (slot, op) group of samples; only kornia's hue kernel is used.
* ``kornia.augmentation.RandomResizedCrop``: kornia 0.9's box generator follows torchvision's rules,
  but kornia 0.7's rejects full-width/height boxes (``w < H``, ``h < W``: strict and with the axes
  swapped) and swaps the fallback, so within the pinned range the box distribution would depend on
  the installed version; it also draws from the global RNG. Its resampling (``crop_by_indices`` or a
  perspective warp with ``align_corners``) is not torchvision's half-pixel, crop-clamped resize. So
  the boxes are sampled here with torchvision's rules and resampled with the weights above.
* ``kornia.augmentation.RandomCrop`` / flips / ``RandomGrayscale``: the same global-RNG issue and no
  uint8 semantics; the batched tensor ops are one line each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from kornia.enhance import adjust_hue as _kornia_adjust_hue
from torch import Tensor

from common.data_spec import AUGMENTATIONS
from common.errors import check_choice

# The constants of datamodules/transforms.py (tests check the two agree).
CROP_PADDING = 4
FLIP_P = 0.5
RRC_SCALE = (0.2, 1.0)
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)
RRC_ATTEMPTS = 10
JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
JITTER_P = 0.8
GRAYSCALE_P = 0.2
#: op indices of the jitter ``order`` (torchvision's ``fn_idx``)
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3
_GREY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


# -- parameters ------------------------------------------------------------------------------------
def _uniform_int(u: Tensor, n: Tensor) -> Tensor:
    """``floor(u·n)`` for ``u`` in ``[0, 1)`` (float64): a uniform integer in ``[0, n - 1]`` per entry."""
    return torch.minimum((u * n).floor().long(), n.long() - 1)


#: torchvision's ``_log_ratio``: the log of the ratio range in float32, as Python floats (computed once)
_LOG_RATIO = tuple(float(v) for v in torch.log(torch.tensor(RRC_RATIO)))


def _rrc_boxes(batch: int, height: int, width: int, g: torch.Generator) -> dict[str, Tensor]:
    """torchvision ``RandomResizedCrop.make_params`` for ``batch`` samples at once."""
    area = float(height * width)
    scale = torch.empty(batch, RRC_ATTEMPTS).uniform_(RRC_SCALE[0], RRC_SCALE[1], generator=g)
    ratio = torch.exp(torch.empty(batch, RRC_ATTEMPTS).uniform_(_LOG_RATIO[0], _LOG_RATIO[1], generator=g))
    target = area * scale.double()  # torchvision: Python float arithmetic on the float32 draws
    w = torch.sqrt(target * ratio.double()).round()  # torch.round = round half to even = Python round
    h = torch.sqrt(target / ratio.double()).round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.int().argmax(dim=1, keepdim=True)  # the first attempt that fits
    found = fits.any(dim=1)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    # central-crop fallback (torchvision's `else` branch of the attempt loop)
    in_ratio = width / height
    if in_ratio < min(RRC_RATIO):
        fw, fh = width, int(round(width / min(RRC_RATIO)))
    elif in_ratio > max(RRC_RATIO):
        fw, fh = int(round(height * max(RRC_RATIO))), height
    else:
        fw, fh = width, height
    h = torch.where(found, h, torch.full_like(h, fh))
    w = torch.where(found, w, torch.full_like(w, fw))
    u_top = torch.rand(batch, dtype=torch.float64, generator=g)
    u_left = torch.rand(batch, dtype=torch.float64, generator=g)
    top = torch.where(found, _uniform_int(u_top, height - h + 1), ((height - h) // 2).long())
    left = torch.where(found, _uniform_int(u_left, width - w + 1), ((width - w) // 2).long())
    return {"top": top, "left": left, "height": h.long(), "width": w.long()}


def _supervised_params(batch: int, g: torch.Generator, *, size: int, height: int, width: int, vflip: bool) -> dict[str, np.ndarray]:
    """RandomCrop(padding 4) + flips, as NumPy arrays: the generator's draws (torch), then the same
    arithmetic as :func:`_uniform_int` and ``U < p`` on the host, where it dispatches no tensor operation."""
    ph, pw = height + 2 * CROP_PADDING, width + 2 * CROP_PADDING
    if ph < size or pw < size:
        raise ValueError(f"size={size} is larger than the padded image ({ph}x{pw})")
    u_top = torch.rand(batch, dtype=torch.float64, generator=g).numpy()
    u_left = torch.rand(batch, dtype=torch.float64, generator=g).numpy()
    hflip = torch.rand(batch, generator=g).numpy() < FLIP_P
    vflips = torch.rand(batch, generator=g).numpy() < FLIP_P
    return {
        "top": np.minimum(np.floor(u_top * (ph - size + 1)).astype(np.int64), ph - size),
        "left": np.minimum(np.floor(u_left * (pw - size + 1)).astype(np.int64), pw - size),
        "hflip": hflip,
        "vflip": vflips & vflip,
    }


def sample_params(
    kind: str, batch: int, seed: int, *, size: int = 32, height: int = 32, width: int = 32, vflip: bool = False
) -> dict[str, Tensor]:
    """The random parameters of one batch of ``kind``, drawn on the CPU from ``Generator(seed)``.

    Args:
        kind: ``"supervised"``, ``"contrastive"`` or ``"none"``.
        batch: number of samples ``B``.
        seed: the generator seed; the result is a pure function of all the arguments.
        size: output side (crop size).
        height, width: input image size ``H``, ``W``.
        vflip: draw vertical flips (supervised only).

    Returns:
        CPU tensors of shape ``[B]`` unless said otherwise:

        * supervised: ``top``, ``left`` (int64, in the image zero-padded by 4, so in
          ``[0, H + 8 - size]``), ``hflip``, ``vflip`` (bool; ``vflip`` all False unless ``vflip``).
        * contrastive: ``top``, ``left``, ``height``, ``width`` (int64, the crop box in the image),
          ``hflip`` (bool), ``jitter`` (bool: the RandomApply draw), ``brightness``, ``contrast``,
          ``saturation`` (float32 factors), ``hue`` (float32, turns), ``order`` (int64 ``[B, 4]``,
          a permutation of 0..3 = brightness, contrast, saturation, hue per sample),
          ``grayscale`` (bool).
        * none: ``{}``.
    """
    check_choice("kind", kind, AUGMENTATIONS)
    g = torch.Generator().manual_seed(int(seed))
    if kind == "none":
        return {}
    if kind == "supervised":
        return {k: torch.from_numpy(v) for k, v in _supervised_params(batch, g, size=size, height=height, width=width, vflip=vflip).items()}
    params = _rrc_boxes(batch, height, width, g)
    params["hflip"] = torch.rand(batch, generator=g) < FLIP_P
    params["jitter"] = torch.rand(batch, generator=g) < JITTER_P
    params["order"] = torch.rand(batch, 4, generator=g).argsort(dim=1)  # a uniform permutation per sample
    b, c, s, h = JITTER
    params["brightness"] = torch.empty(batch).uniform_(1 - b, 1 + b, generator=g)
    params["contrast"] = torch.empty(batch).uniform_(1 - c, 1 + c, generator=g)
    params["saturation"] = torch.empty(batch).uniform_(1 - s, 1 + s, generator=g)
    params["hue"] = torch.empty(batch).uniform_(-h, h, generator=g)
    params["grayscale"] = torch.rand(batch, generator=g) < GRAYSCALE_P
    return params


# -- batched ops on float32 values in [0, 255] (torchvision's uint8 kernels) -----------------------
def _col(f: Tensor) -> Tensor:
    return f.view(-1, 1, 1, 1)


def _grey(x: Tensor) -> Tensor:
    """``[n, 3, H, W] -> [n, 1, H, W]``, torchvision's weights and operation order, floored (uint8)."""
    r, g, b = x.unbind(dim=1)
    return r.mul(_GREY[0]).add_(g, alpha=_GREY[1]).add_(b, alpha=_GREY[2]).floor_().unsqueeze(1)


def _blend(x: Tensor, other: Tensor, f: Tensor) -> Tensor:
    return x.mul(_col(f)).add_(other * _col(1.0 - f)).clamp_(0.0, 255.0).floor_()


def adjust_brightness(x: Tensor, f: Tensor) -> Tensor:
    return x.mul(_col(f)).clamp_(0.0, 255.0).floor_()


def adjust_contrast(x: Tensor, f: Tensor) -> Tensor:
    return _blend(x, _grey(x).mean(dim=(-3, -2, -1), keepdim=True), f)


def adjust_saturation(x: Tensor, f: Tensor) -> Tensor:
    return _blend(x, _grey(x), f)


def adjust_hue(x: Tensor, hue: Tensor) -> Tensor:
    """kornia's batched HSV shift; ``hue`` in turns (torchvision) -> radians (kornia)."""
    y = _kornia_adjust_hue(x.mul(1.0 / 255), hue.to(x.dtype) * (2 * math.pi))
    return y.clamp_(0.0, 1.0).mul_(255.999).floor_()  # torchvision's float -> uint8 (truncation)


_JITTER_OPS = {
    BRIGHTNESS: ("brightness", adjust_brightness),
    CONTRAST: ("contrast", adjust_contrast),
    SATURATION: ("saturation", adjust_saturation),
    HUE: ("hue", adjust_hue),
}


def resize_weights(start: Tensor, length: Tensor, in_size: int, out_size: int) -> Tensor:
    """Per-sample 1-D resampling matrices ``[B, out_size, in_size]`` (float32): row ``i`` of sample
    ``b`` holds the weights of output pixel ``i`` of ``resize(x[start_b : start_b + length_b])`` with
    ATen's antialiased bilinear filter (what ``interpolate(mode="bilinear", antialias=True,
    align_corners=False)`` uses; identical to plain bilinear with edge clamping when upscaling)."""
    scale = length.double() / out_size  # [B]
    support = scale.clamp(min=1.0)
    centre = scale[:, None] * (torch.arange(out_size, dtype=torch.float64, device=start.device) + 0.5)  # [B, out]
    j = torch.arange(in_size, device=start.device)[None, :] - start[:, None]  # crop-local index [B, in]
    t = (j[:, None, :].double() + 0.5 - centre[:, :, None]) / support[:, None, None]
    w = (1.0 - t.abs()).clamp_(min=0.0) * ((j >= 0) & (j < length[:, None]))[:, None, :]
    return (w / w.sum(dim=-1, keepdim=True)).float()


# -- the module --------------------------------------------------------------------------------------
class DeviceAugment(torch.nn.Module):
    """``build_transform(kind, mean=, std=, size=, vflip=)`` for a whole uint8 batch on its device.

    Args:
        kind: ``"supervised"``, ``"contrastive"`` or ``"none"`` (see :mod:`datamodules.transforms`).
        mean, std: per-channel normalisation (3 values each), on the ``[0, 1]`` scale.
        size: output side for the two random kinds (``"none"`` keeps the input size, like
            ``build_transform("none")``).
        vflip: also flip vertically with p=0.5 (supervised only, as the Sup code of Corti et al.).

    ``forward(images, seed=s)``: ``images`` uint8 ``[B, 3, H, W]`` on any device -> float32
    ``[B, 3, size, size]`` on the same device; a pure function of ``(images, s)`` (the global RNG is
    neither used nor advanced) and the same parameters on CPU and CUDA.

    Raises:
        ConfigError: unknown ``kind``.
        ValueError: ``mean``/``std`` not 3 values, a zero ``std``, ``size < 1``; in ``forward``, images
            that are not uint8 ``[B, 3, H, W]``.
    """

    def __init__(
        self, kind: str, *, mean: Sequence[float], std: Sequence[float], size: int = 32, vflip: bool = False
    ) -> None:
        super().__init__()
        check_choice("kind", kind, AUGMENTATIONS)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std must have 3 values each, got mean={list(mean)}, std={list(std)}")
        if not all(std):
            raise ValueError(f"std={list(std)} has a zero entry")
        if size < 1:
            raise ValueError(f"size={size} must be >= 1")
        self.kind = kind
        self.size = int(size)
        self.vflip = bool(vflip)
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(3, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, size={self.size}, vflip={self.vflip}"

    def params(self, images: Tensor, seed: int) -> dict[str, Tensor]:
        """The CPU parameters ``forward(images, seed=seed)`` uses."""
        b, _, h, w = images.shape
        return sample_params(self.kind, b, seed, size=self.size, height=h, width=w, vflip=self.vflip)

    @torch.no_grad()
    def forward(self, images: Tensor, *, seed: int) -> Tensor:
        return self.views(images, seeds=[seed])[0]

    @torch.no_grad()
    def views(self, images: Tensor, *, seeds: Sequence[int]) -> list[Tensor]:
        """One augmented batch per seed (``views(x, seeds=[s])[0] == forward(x, seed=s)``), computed in
        one pass over the views stacked along the batch: every operation treats each sample on its
        own, so the result is that of one call per seed, with a fraction of the device operations."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [B, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        n = len(seeds)
        b, _, h, w = images.shape
        stacked = images if n == 1 else torch.cat([images] * n)
        if self.kind == "supervised":
            drawn = [_supervised_params(b, torch.Generator().manual_seed(int(s)), size=self.size, height=h, width=w, vflip=self.vflip)
                     for s in seeds]  # fmt: skip
            x = self._crop_flip(stacked, {k: np.concatenate([d[k] for d in drawn]) for k in drawn[0]}).float()
        elif self.kind == "contrastive":
            params = [self.params(images, s) for s in seeds]
            x = self._contrastive(stacked, {k: torch.cat([p[k] for p in params]) for k in params[0]})
        else:
            x = stacked.float()
        mean = self.mean.to(images.device)
        std = self.std.to(images.device)
        x = x.mul_(1.0 / 255).sub_(mean).div_(std)  # ToDtype(float32, scale=True) + Normalize
        return list(x.chunk(n)) if n > 1 else [x]

    # -- supervised ---------------------------------------------------------------------------------
    def _crop_flip(self, images: Tensor, p: dict[str, np.ndarray]) -> Tensor:
        """Crop (in the zero-padded batch) and flip as two gathers whose per-sample row and column
        indices are built on the host (a flipped axis reads its crop backwards) and sent in one
        non-blocking copy: the same pixels as crop-then-flip, in 8 device operations."""
        dev, s = images.device, self.size
        b, c = images.shape[:2]
        ar = np.arange(s)
        rows = p["top"][:, None] + np.where(p["vflip"][:, None], s - 1 - ar, ar)
        cols = p["left"][:, None] + np.where(p["hflip"][:, None], s - 1 - ar, ar)
        index = torch.from_numpy(np.stack([rows, cols])).to(dev, non_blocking=True)  # [2, B, s]
        padded = F.pad(images, [CROP_PADDING] * 4)  # zeros, torchvision's default fill
        x = padded.gather(2, index[0].view(b, 1, s, 1).expand(b, c, s, padded.shape[-1]))
        return x.gather(3, index[1].view(b, 1, 1, s).expand(b, c, s, s))

    # -- contrastive ---------------------------------------------------------------------------------
    def _contrastive(self, images: Tensor, p: dict[str, Tensor]) -> Tensor:
        dev = images.device
        _, _, h, w = images.shape
        pd = {k: v.to(dev, non_blocking=True) for k, v in p.items()}
        wy = resize_weights(pd["top"], pd["height"], h, self.size)  # [B, size, H]
        wx = resize_weights(pd["left"], pd["width"], w, self.size)  # [B, size, W]
        # horizontal pass, rounded to uint8 values, then vertical pass, rounded: the two passes of
        # ATen's CPU uint8 antialiased kernel (fixed point, round half up), which torchvision uses
        b, c, s = images.shape[0], images.shape[1], self.size
        x = torch.bmm(images.float().reshape(b, c * h, w), wx.transpose(1, 2)).add_(0.5).floor_()  # [B, 3H, S]
        x = x.view(b, c, h, s).transpose(1, 2).reshape(b, h, c * s)  # [B, H, 3S]
        x = torch.bmm(wy, x).add_(0.5).floor_().clamp_(0.0, 255.0)  # [B, S, 3S]
        x = x.view(b, s, c, s).transpose(1, 2).contiguous()  # [B, 3, S, S]
        x = torch.where(pd["hflip"].view(-1, 1, 1, 1), x.flip(-1), x)
        x = self._jitter(x, p, pd)
        grey = _grey(x).expand_as(x)
        return torch.where(pd["grayscale"].view(-1, 1, 1, 1), grey, x)

    @staticmethod
    def _jitter(x: Tensor, p: dict[str, Tensor], pd: dict[str, Tensor]) -> Tensor:
        """The four ColorJitter ops in each sample's own order: for each of the 4 slots and each of
        the 4 ops, the samples whose ``order[slot]`` is that op (indices found on the CPU, so no
        device sync) go through the op together — 16 batched calls, each sample in 4 of them."""
        jitter, order = p["jitter"].numpy(), p["order"].numpy()
        for slot in range(4):
            for op, (name, fn) in _JITTER_OPS.items():
                found = np.flatnonzero(jitter & (order[:, slot] == op))  # on the host, in NumPy
                if found.size == 0:
                    continue
                idx = torch.from_numpy(found).to(x.device, non_blocking=True)
                x.index_copy_(0, idx, fn(x.index_select(0, idx), pd[name].index_select(0, idx)))
        return x


__all__ = ["DeviceAugment", "sample_params", "resize_weights"]
