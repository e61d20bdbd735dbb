"""The test images of a dataset, for the one figure that shows them (paper Figure 6).

Tables never need this: they read only run folders. The gallery of flipped predictions needs the
pixels, so this module reads the dataset the runs were trained on from a run's ``config.yaml``
(``data.class_path`` + ``data.init_args``, the fully resolved LightningCLI config), instantiates that
datamodule class with ``download=False`` (analyze never downloads a dataset) and calls its
``load_arrays(train=False)``. The images are checked against the runs' per-sample file (same
labels at the same indices) before they are shown. Anything that goes wrong is a
:class:`ImagesUnavailable` with a one-line reason, and the figure is listed as not drawn.

Imports the datamodule (and so torch) only when called.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.runs import Study

CONFIG_FILE = "config.yaml"


class ImagesUnavailable(RuntimeError):
    """The test images could not be loaded; the message is one line saying why."""


@dataclass(frozen=True)
class ImageSet:
    """uint8 images ``[N, H, W, 3]`` (``N`` = the dataset's test set), labels ``[N]``, class names or None."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str] | None
    source: str  # e.g. "datamodules.SyntheticDataModule(test_size=128, ...)"
    class_path: str = ""

    def name(self, label: int) -> str:
        if self.class_names is not None and 0 <= int(label) < len(self.class_names):
            return str(self.class_names[int(label)])
        return str(int(label))


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0].strip()}" if text else type(err).__name__


def data_config(run_dir: Path) -> tuple[str, dict]:
    """``(class_path, init_args)`` of the ``data`` entry of ``<run_dir>/config.yaml``."""
    import yaml

    path = Path(run_dir) / CONFIG_FILE
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ImagesUnavailable(f"{path} is not readable ({_one_line(err)})") from err
    data = config.get("data") if isinstance(config, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("class_path"), str):
        raise ImagesUnavailable(f"{path} has no data.class_path")
    init_args = data.get("init_args") or {}
    if not isinstance(init_args, dict):
        raise ImagesUnavailable(f"{path}: data.init_args is not a mapping")
    return data["class_path"], dict(init_args)


def load_test_images(run_dir: Path, index: np.ndarray, labels: np.ndarray) -> ImageSet:
    """The test images of the dataset ``run_dir`` was trained on, checked against ``labels`` at ``index``.

    Raises:
        ImagesUnavailable: no config, the class cannot be imported or built, the files are not
            there (``download=False``), or the images do not match the runs' labels.
    """
    class_path, init_args = data_config(run_dir)
    module_name, _, class_name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ImagesUnavailable(f"cannot import {class_path} ({_one_line(err)})") from err
    init_args["download"] = False
    init_args["num_workers"] = 0
    try:
        datamodule = cls(**init_args)
        images, targets = datamodule.load_arrays(train=False)
    except (TypeError, ValueError, OSError, RuntimeError, KeyError, ImportError) as err:
        raise ImagesUnavailable(f"{class_path} could not load its test set ({_one_line(err)})") from err
    images = np.asarray(images.numpy() if hasattr(images, "numpy") else images)
    targets = np.asarray(targets.numpy() if hasattr(targets, "numpy") else targets).astype(np.int64)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ImagesUnavailable(f"{class_path}.load_arrays gave images of shape {images.shape}, expected [N, C, H, W]")
    index = np.asarray(index, dtype=np.int64)
    if index.size and (int(index.max()) >= len(targets) or int(index.min()) < 0):
        raise ImagesUnavailable(f"{class_path} has {len(targets)} test images, but the runs index up to {int(index.max())}")
    if not np.array_equal(targets[index], np.asarray(labels, dtype=np.int64)):
        raise ImagesUnavailable(f"the test set {class_path} loads now has other labels than the runs' per-sample files")
    hwc = np.transpose(images, (0, 2, 3, 1))
    if hwc.shape[-1] == 1:
        hwc = np.repeat(hwc, 3, axis=-1)
    names = getattr(cls, "class_names", None)
    shown = ", ".join(f"{k}={v}" for k, v in init_args.items() if k in ("data_dir", "test_size", "seed"))
    return ImageSet(hwc.astype(np.uint8), targets, list(names) if names else None, f"{class_path}({shown})", class_path)


def class_names_of(run_dir: Path) -> tuple[list[str] | None, str]:
    """``(class names or None, where from)``: the ``class_names`` the datamodule class named in
    ``<run_dir>/config.yaml`` declares (read from the class, nothing is instantiated or loaded)."""
    try:
        class_path, _ = data_config(run_dir)
    except ImagesUnavailable as err:
        return None, str(err)
    module_name, _, class_name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as err:
        return None, f"cannot import {class_path} ({_one_line(err)})"
    names = getattr(cls, "class_names", None)
    if not names:
        return None, f"{class_path} declares no class_names"
    return [str(n) for n in names], f"class names of {class_path}"


def class_labels(study: Study, dataset: str, num_classes: int) -> tuple[list[str], str]:
    """``(one label per class, where from)`` for the axes of ``dataset``'s figures and the columns of its
    tables: the datamodule's class names (:func:`class_names_of`, from the first run of the dataset,
    cached on the study), else the class indices, with the reason."""
    if dataset not in study.class_names:
        first = min((r for r in study.runs if r.setting.dataset == dataset), key=lambda r: str(r.path))
        study.class_names[dataset] = class_names_of(first.path)
    names, source = study.class_names[dataset]
    if names is None or len(names) < num_classes:
        why = source if names is None else f"{source} lists {len(names)} classes, the runs predict {num_classes}"
        return [str(c) for c in range(num_classes)], f"class indices ({why})"
    return names[:num_classes], source


__all__ = ["ImagesUnavailable", "ImageSet", "class_labels", "class_names_of", "data_config", "load_test_images"]
