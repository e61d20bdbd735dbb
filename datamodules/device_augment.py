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
* flips: a supervised flip reads its crop backwards; a contrastive flip reverses the horizontal
  resampling matrix's rows (exact either way).
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
* hue: kornia's ``adjust_hue`` arithmetic (RGB→HSV, shift, HSV→RGB; kornia 0.9, bit-equal to it,
  tested) on ``x/255`` with a per-sample angle ``2π·hue`` (radians; torchvision works in turns), then
  torchvision's float→uint8 rule ``floor(255.999·y)``. Written here with fewer selections, so kornia
  is not needed at run time.
* the order: the four ops in each sample's own order, as one fixed sequence of batched operations
  whatever the draws (:func:`_jitter_plan`): brightness, contrast and saturation share one blend
  kernel that is exact identity at factor 1, so each sample's ops before its hue fill three blend
  slots, the hue runs once for the batch, its ops after the hue fill three more; a sample with
  fewer ops (or no jitter) has factor 1 in the rest. The plan is worked out in NumPy on the host and
  sent in two copies; nothing is indexed per group of samples on the device.
* RandomResizedCrop's resampling matrices come from a table of every crop of the input side (and
  its flip), built once per device: a batch's matrices are two row lookups.
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
  four ops are applied in per-sample order as above; only kornia's hue arithmetic is followed.
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
#: torchvision's ``_log_ratio``: the log of the ratio range in float32, as Python floats (computed once)
_LOG_RATIO = tuple(float(v) for v in torch.log(torch.tensor(RRC_RATIO)))


def _rrc_boxes(batch: int, height: int, width: int, g: torch.Generator) -> dict[str, np.ndarray]:
    """torchvision ``RandomResizedCrop.make_params`` for ``batch`` samples at once: the generator's
    draws (and the float32 ``exp``) in torch, the float64 arithmetic in NumPy (IEEE: the same values)."""
    area = float(height * width)
    scale = torch.empty(batch, RRC_ATTEMPTS).uniform_(RRC_SCALE[0], RRC_SCALE[1], generator=g).numpy()
    ratio = torch.exp(torch.empty(batch, RRC_ATTEMPTS).uniform_(_LOG_RATIO[0], _LOG_RATIO[1], generator=g)).numpy()
    target = area * scale.astype(np.float64)  # torchvision: Python float arithmetic on the float32 draws
    w = np.round(np.sqrt(target * ratio.astype(np.float64)))  # round half to even = Python round
    h = np.round(np.sqrt(target / ratio.astype(np.float64)))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.argmax(axis=1)[:, None]  # the first attempt that fits
    found = fits.any(axis=1)
    w = np.take_along_axis(w, first, 1)[:, 0]
    h = np.take_along_axis(h, first, 1)[:, 0]
    # central-crop fallback (torchvision's `else` branch of the attempt loop)
    in_ratio = width / height
    if in_ratio < min(RRC_RATIO):
        fw, fh = width, int(round(width / min(RRC_RATIO)))
    elif in_ratio > max(RRC_RATIO):
        fw, fh = int(round(height * max(RRC_RATIO))), height
    else:
        fw, fh = width, height
    h = np.where(found, h, fh).astype(np.int64)
    w = np.where(found, w, fw).astype(np.int64)
    u_top = torch.rand(batch, dtype=torch.float64, generator=g).numpy()
    u_left = torch.rand(batch, dtype=torch.float64, generator=g).numpy()
    top = np.where(found, _uniform_int(u_top, height - h + 1), (height - h) // 2)
    left = np.where(found, _uniform_int(u_left, width - w + 1), (width - w) // 2)
    return {"top": top, "left": left, "height": h, "width": w}


def _uniform_int(u: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """``floor(u·n)`` for ``u`` in ``[0, 1)`` (float64): a uniform integer in ``[0, n - 1]`` per entry."""
    return np.minimum(np.floor(u * n).astype(np.int64), np.asarray(n, dtype=np.int64) - 1)


def _contrastive_params(batch: int, g: torch.Generator, *, height: int, width: int) -> dict[str, np.ndarray]:
    """The contrastive draws (see :func:`sample_params`) as NumPy arrays, in the generator's order."""
    params = _rrc_boxes(batch, height, width, g)
    params["hflip"] = torch.rand(batch, generator=g).numpy() < FLIP_P
    params["jitter"] = torch.rand(batch, generator=g).numpy() < JITTER_P
    params["order"] = torch.rand(batch, 4, generator=g).argsort(dim=1).numpy()  # a uniform permutation per sample
    b, c, s, h = JITTER
    params["brightness"] = torch.empty(batch).uniform_(1 - b, 1 + b, generator=g).numpy()
    params["contrast"] = torch.empty(batch).uniform_(1 - c, 1 + c, generator=g).numpy()
    params["saturation"] = torch.empty(batch).uniform_(1 - s, 1 + s, generator=g).numpy()
    params["hue"] = torch.empty(batch).uniform_(-h, h, generator=g).numpy()
    params["grayscale"] = torch.rand(batch, generator=g).numpy() < GRAYSCALE_P
    return params


def _supervised_params(batch: int, g: torch.Generator, *, size: int, height: int, width: int, vflip: bool) -> dict[str, np.ndarray]:
    """RandomCrop(padding 4) + flips, as NumPy arrays: the generator's draws (torch), then
    :func:`_uniform_int` and ``U < p`` on the host, where they dispatch no tensor operation."""
    ph, pw = height + 2 * CROP_PADDING, width + 2 * CROP_PADDING
    if ph < size or pw < size:
        raise ValueError(f"size={size} is larger than the padded image ({ph}x{pw})")
    u_top = torch.rand(batch, dtype=torch.float64, generator=g).numpy()
    u_left = torch.rand(batch, dtype=torch.float64, generator=g).numpy()
    hflip = torch.rand(batch, generator=g).numpy() < FLIP_P
    vflips = torch.rand(batch, generator=g).numpy() < FLIP_P
    return {
        "top": _uniform_int(u_top, ph - size + 1),
        "left": _uniform_int(u_left, pw - size + 1),
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
    return {k: torch.from_numpy(v) for k, v in _contrastive_params(batch, g, height=height, width=width).items()}


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
    """The batched HSV hue shift; ``hue`` in turns (torchvision), one per sample."""
    return _shift_hue(x, hue.to(x.dtype) * (2 * math.pi))


_TWO_PI = 2 * math.pi
#: hsv -> rgb: for output channel r, g, b and sextant 0..5, which of the planes (v, q, p, t) it takes
_SEXTANT_PLANES = ((0, 1, 2, 2, 3, 0), (3, 0, 0, 1, 2, 2), (2, 2, 3, 0, 0, 1))
_sextant_tables: dict[torch.device, Tensor] = {}


def _shift_hue(x: Tensor, angle: Tensor) -> Tensor:
    """Shift the hue of ``x`` (float32 values in ``[0, 255]``, ``[B, 3, H, W]``) by ``angle`` radians
    per sample and truncate to uint8 values as torchvision does (``floor(255.999·y)``).

    The arithmetic is kornia's ``adjust_hue`` (kornia.color.hsv ``rgb_to_hsv`` / ``hsv_to_rgb`` and
    ``adjust_hue_raw`` of kornia 0.9, eps 1e-8) operation for operation, so its values are bit-equal
    to kornia's (a test compares them); only the hsv -> rgb selection is one ``gather`` from a table
    instead of kornia's chains of ``where``, and the HSV planes are never stacked and split.
    """
    y = x.mul(1.0 / 255)
    min_rgb, max_rgb = torch.aminmax(y, dim=-3)
    deltac = max_rgb - min_rgb
    s = deltac / torch.where(max_rgb == 0, 1.0, max_rgb + 1e-8)
    deltac = torch.where(deltac == 0, 1.0, deltac)
    rc, gc, bc = torch.unbind(max_rgb.unsqueeze(-3) - y, dim=-3)
    h1 = bc - gc
    h2 = torch.add(rc - bc, deltac, alpha=2.0)  # (rc - bc) + 2·deltac: 2·deltac is exact
    h3 = torch.add(gc - rc, deltac, alpha=4.0)
    r, g, b = torch.unbind(y, dim=-3)
    h = torch.where((r >= g) & (r >= b), h1, torch.where(g >= b, h2, h3))  # the first maximal channel
    h = h / deltac
    h = (h / 6.0) % 1.0
    h = _TWO_PI * h
    h = h.masked_fill(h >= _TWO_PI, 0.0)
    h = torch.remainder(h + angle.view(-1, 1, 1), _TWO_PI)  # adjust_hue_raw
    h = h.masked_fill(h >= _TWO_PI, 0.0)
    h = h / _TWO_PI  # hsv_to_rgb
    h6 = h * 6
    hi = torch.floor(h6) % 6
    f = (h6 % 6) - hi
    v = max_rgb
    p = v * (1.0 - s)
    q = v * (1.0 - f * s)
    t = v * (1.0 - (1.0 - f) * s)
    sextant = hi.long().clamp_(0, 5)
    table = _sextant_tables.get(x.device)
    if table is None:
        table = _sextant_tables[x.device] = torch.tensor(_SEXTANT_PLANES).to(x.device, non_blocking=True)
    rgb = torch.stack((v, q, p, t)).gather(0, table[:, sextant]).movedim(0, -3)  # [B, 3, H, W]
    return rgb.clamp_(0.0, 1.0).mul_(255.999).floor_()  # torchvision's float -> uint8 (truncation)


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

    #: largest resize table kept per (input side, device): 32x32 -> 32 takes 4.3 MB, 64x64 -> 32 34 MB
    TABLE_BYTES = 64 * 2**20

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
        self._tables: dict[tuple[int, str], tuple[Tensor, np.ndarray] | None] = {}  # resize matrices per (side, device)

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
            drawn = [_contrastive_params(b, torch.Generator().manual_seed(int(s)), height=h, width=w) for s in seeds]
            x = self._contrastive(stacked, {k: np.concatenate([d[k] for d in drawn]) for k in drawn[0]})
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
    def _resize_table(self, in_size: int, device: torch.device) -> tuple[Tensor, np.ndarray] | None:
        """Every crop's resampling matrix for one input side, computed once per device: rows
        ``[0, n)`` are :func:`resize_weights` of each (start, length) crop, rows ``[n, 2n)`` the same
        with the output order reversed (a flip); with the row of each (start, length) as a host array.
        ``None`` when the table would exceed :attr:`TABLE_BYTES` (a large image: the weights are then
        built per batch, the same values)."""
        key = (in_size, str(device))
        if key not in self._tables:
            start, length = (a.ravel() for a in np.meshgrid(np.arange(in_size), np.arange(1, in_size + 1), indexing="ij"))
            valid = start + length <= in_size
            start, length = start[valid], length[valid]
            if 2 * len(start) * self.size * in_size * 4 > self.TABLE_BYTES:
                self._tables[key] = None  # remembered: not worked out again every batch
                return None
            row = np.full((in_size, in_size + 1), -1, dtype=np.int64)
            row[start, length] = np.arange(len(start))
            start_d, length_d = (torch.from_numpy(a).to(device, non_blocking=True) for a in (start, length))
            w = resize_weights(start_d, length_d, in_size, self.size)
            self._tables[key] = (torch.cat([w, w.flip(1)]), row)
        return self._tables[key]

    def _weights(self, images: Tensor, p: dict[str, np.ndarray]) -> tuple[Tensor, Tensor]:
        """The batch's vertical and horizontal resampling matrices ``[B, size, H]``, ``[B, size, W]``,
        the horizontal one with its rows reversed where ``hflip`` (the flip, done by the resample):
        rows of the two tables, picked on the host and sent in one copy, or built for this batch."""
        dev, (h, w) = images.device, images.shape[-2:]
        ty, tx = self._resize_table(h, dev), self._resize_table(w, dev)
        if ty is not None and tx is not None:
            iy = ty[1][p["top"], p["height"]]
            ix = tx[1][p["left"], p["width"]] + np.where(p["hflip"], len(tx[0]) // 2, 0)
            index = torch.from_numpy(np.stack([iy, ix])).to(dev, non_blocking=True)  # [2, B]
            return ty[0].index_select(0, index[0]), tx[0].index_select(0, index[1])
        t = {k: torch.from_numpy(np.ascontiguousarray(p[k])).to(dev, non_blocking=True) for k in ("top", "height", "left", "width", "hflip")}
        wx = resize_weights(t["left"], t["width"], w, self.size)
        return resize_weights(t["top"], t["height"], h, self.size), torch.where(t["hflip"].view(-1, 1, 1), wx.flip(1), wx)

    def _contrastive(self, images: Tensor, params: dict[str, np.ndarray | Tensor]) -> Tensor:
        """RandomResizedCrop + flip (one resample), ColorJitter in each sample's order, grayscale.

        Everything a sample's parameters decide is worked out on the host (NumPy) and sent in three
        copies; the device work has the same operations whatever the draws (no per-group indexing).
        """
        dev = images.device
        p = {k: np.asarray(v) for k, v in params.items()}
        b, c, h, w = images.shape
        s = self.size
        plan = _jitter_plan(p)
        floats = torch.from_numpy(plan["floats"]).to(dev, non_blocking=True)  # [13, B]
        flags = torch.from_numpy(plan["flags"]).to(dev, non_blocking=True)  # [14, B]
        wy, wx = self._weights(images, p)
        # horizontal pass, rounded to uint8 values, then vertical pass, rounded: the two passes of
        # ATen's CPU uint8 antialiased kernel (fixed point, round half up), which torchvision uses;
        # the flip is in wx (its rows reversed), so it costs nothing here
        x = torch.bmm(images.float().reshape(b, c * h, w), wx.transpose(1, 2)).add_(0.5).floor_()  # [B, 3H, S]
        x = x.view(b, c, h, s).transpose(1, 2).reshape(b, h, c * s)  # [B, H, 3S]
        x = torch.bmm(wy, x).add_(0.5).floor_().clamp_(0.0, 255.0)  # [B, S, 3S]
        x = x.view(b, s, c, s).transpose(1, 2).contiguous()  # [B, 3, S, S]
        x = _jitter(x, plan, floats, flags)
        return torch.where(flags[_GRAYSCALE_ROW].view(-1, 1, 1, 1), _grey(x).expand_as(x), x)


# -- ColorJitter in per-sample order, with the same operations for every draw ---------------------
#: rows of the plan's ``flags``: contrast of blend slot k at k, saturation at 6 + k, then hue, grayscale
_HUE_ROW, _GRAYSCALE_ROW = 12, 13
#: rows of the plan's ``floats``: factor of blend slot k at k, 1 - factor at 6 + k, the hue angle at 12
_ANGLE_ROW = 12


def _jitter_plan(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ColorJitter's per-sample order as 6 blend slots around one hue step, on the host.

    Brightness, contrast and saturation are one kernel, ``floor(clamp(x·f + other·(1 - f)))`` with
    ``other`` = 0, the mean grey or the grey image; with ``f = 1`` it returns an integer-valued ``x``
    exactly (``x·1 + other·0 = x``), so a slot can hold a different op, or none, per sample. Hue does
    not have such an identity, so each sample's order is cut at its hue: the ops before it go to
    slots 0-2, the hue step is applied (where ``jitter``), the ops after it go to slots 3-5. Every
    sample sees its own ops in its own order, and the hue kernel runs once per batch, not four times.

    Returns ``floats`` (float32 ``[13, B]``: factors of slots 0-5, ``1 - factor`` of slots 0-5, hue
    angle in radians), ``flags`` (bool ``[14, B]``: contrast of slots 0-5, saturation of slots 0-5,
    hue applied, grayscale), on the host: ``used``, ``contrast``, ``saturation`` (bool ``[6]``: the
    blend slots some sample uses, and those that need the grey image's mean or the grey image) and
    ``hue`` (whether any sample is jittered).
    """
    jitter, order = p["jitter"].astype(bool), p["order"].astype(np.int64)
    hue_at = np.argmax(order == HUE, axis=1)[:, None]  # [B, 1]
    j = np.arange(3)[None, :]
    pre = np.where((j < hue_at) & jitter[:, None], order[:, :3], -1)
    after = hue_at + 1 + j
    post = np.where((after < 4) & jitter[:, None], np.take_along_axis(order, np.minimum(after, 3), 1), -1)
    slots = np.concatenate([pre, post], axis=1)  # [B, 6]: BRIGHTNESS/CONTRAST/SATURATION or -1
    factors = np.stack([p["brightness"], p["contrast"], p["saturation"]], axis=1).astype(np.float32)
    f = np.where(slots >= 0, np.take_along_axis(factors, np.maximum(slots, 0), 1), np.float32(1.0)).astype(np.float32)
    one_minus = np.float32(1.0) - f  # float32, as torch's ``1.0 - f`` on a float32 tensor
    angle = p["hue"].astype(np.float32) * np.float32(_TWO_PI)  # float32, as ``hue * (2π)`` on a float32 tensor
    floats = np.concatenate([f.T, one_minus.T, angle[None]]).astype(np.float32)
    contrast, saturation = slots == CONTRAST, slots == SATURATION
    flags = np.concatenate([contrast.T, saturation.T, jitter[None], p["grayscale"].astype(bool)[None]])
    return {
        "floats": np.ascontiguousarray(floats),
        "flags": np.ascontiguousarray(flags),
        "used": (slots >= 0).any(axis=0),
        "contrast": contrast.any(axis=0),
        "saturation": saturation.any(axis=0),
        "hue": bool(jitter.any()),
    }


def _jitter(x: Tensor, plan: dict[str, np.ndarray], floats: Tensor, flags: Tensor) -> Tensor:
    """Apply a :func:`_jitter_plan` (its ``floats``/``flags`` on ``x``'s device) to ``x`` ``[B, 3, S, S]``."""

    def blend(x: Tensor, k: int) -> Tensor:
        if not plan["used"][k]:
            return x
        other: Tensor | float = 0.0
        if plan["contrast"][k] or plan["saturation"][k]:
            grey = _grey(x)
            if plan["contrast"][k]:
                other = torch.where(flags[k].view(-1, 1, 1, 1), grey.mean(dim=(-3, -2, -1), keepdim=True), 0.0)
            if plan["saturation"][k]:
                other = torch.where(flags[6 + k].view(-1, 1, 1, 1), grey, other)
        x = x.mul(_col(floats[k]))
        if not isinstance(other, float):
            x = x.add_(other * _col(floats[6 + k]))
        return x.clamp_(0.0, 255.0).floor_()

    for k in range(3):
        x = blend(x, k)
    if plan["hue"]:
        x = torch.where(flags[_HUE_ROW].view(-1, 1, 1, 1), _shift_hue(x, floats[_ANGLE_ROW]), x)
    for k in range(3, 6):
        x = blend(x, k)
    return x


__all__ = ["DeviceAugment", "sample_params", "resize_weights"]
