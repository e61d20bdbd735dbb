"""How a run folder is named and found: the config hash of ``--run.resume auto``, the run name
(``<method>[-p<sparsity>]-s<seed>``), the W&B tags, and the folder checks.

Shared by the training command (:mod:`training.lightning_cli`) and by what must know a run's folder
without training it (:mod:`training.target`, the population runner). No Lightning here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentParser

from common.parser_errors import import_path
from common.run_folder import CONFIG_YAML, MODEL_CLASS_METHODS

RUN_DIR_ENV = "CONTRASTIVE_PRUNING_RUN_DIR"  # shares the parent's decisions with DDP child processes
RESUME_ENV = "CONTRASTIVE_PRUNING_RESUME"  # {"ckpt_path": ..., "wandb_id": ...} as JSON


def is_ddp_child() -> bool:
    """A process Lightning's DDP launcher started from this script (it inherits the parent's decisions)."""
    return "LOCAL_RANK" in os.environ and os.environ.get("LOCAL_RANK") != "0" and bool(os.environ.get(RUN_DIR_ENV))


#: a run folder named by :func:`config_hash`: ``<run name>-<10 hex digits>``
HASH_NAME = re.compile(r"-[0-9a-f]{10}")


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


@functools.cache
def init_defaults(class_path: str) -> dict[str, Any]:
    """The ``init_args`` defaults of a class as jsonargparse resolves them (``super().__init__``
    parameters reached through ``**kwargs`` included); ``{}`` for a class that cannot be imported."""
    cls = import_path(class_path)
    if not isinstance(cls, type):
        return {}
    try:
        parser = ArgumentParser(exit_on_error=False)
        parser.add_class_arguments(cls, fail_untyped=False)
        return parser.get_defaults().as_dict()
    except Exception:  # noqa: BLE001 - a class jsonargparse cannot describe keeps all its arguments in the hash
        return {}


def hashed_part(value: Any, default: Any = None) -> Any:
    """``value`` without what does not change the run: keys whose value is their default (so a new
    argument with a default leaves every existing folder name as it was), empty groups, and the
    paths of the YAML files a config came from."""
    if isinstance(value, dict):
        if isinstance(value.get("class_path"), str):
            kept = {k: v for k, v in value.items() if k not in ("init_args", "__path__")}
            kept["init_args"] = hashed_part(value.get("init_args") or {}, init_defaults(value["class_path"]))
            return {k: v for k, v in kept.items() if v != {}}
        defaults = default if isinstance(default, dict) else {}
        kept = {
            k: hashed_part(v, defaults.get(k))
            for k, v in value.items()
            if k not in ("__path__", "config") and not (k in defaults and _same(v, defaults[k]))
        }
        return {k: v for k, v in kept.items() if v != {}}
    if isinstance(value, (list, tuple)):
        return [hashed_part(v) for v in value]
    return value


def config_hash(cfg: Any, defaults: Any = None) -> str:
    """Short hash of what a run trains: the resolved config (a Namespace, or ``config.yaml`` read
    back) without ``run``, ``ckpt_path``, the YAML files' paths, and every value equal to its
    default in ``defaults`` (the parser's) or in its class's signature."""
    data = cfg.as_dict() if hasattr(cfg, "as_dict") else dict(cfg)
    data = {k: v for k, v in data.items() if k not in ("run", "ckpt_path")}
    text = json.dumps(hashed_part(data, defaults or {}), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def same_run_folder(group: Path, name: str, digest: str, defaults: Any) -> Path | None:
    """A folder of ``group`` named ``<name>-<hash>`` by another version of :func:`config_hash`
    (an earlier one hashed defaults too) whose ``config.yaml`` hashes to ``digest`` today."""
    if not group.is_dir():
        return None
    for folder in sorted(group.iterdir()):
        rest = folder.name[len(name):] if folder.name.startswith(name) else ""
        if not HASH_NAME.fullmatch(rest) or not (folder / CONFIG_YAML).is_file():
            continue
        try:
            saved = yaml.safe_load((folder / CONFIG_YAML).read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(saved, dict) and config_hash(saved, defaults) == digest:
            return folder
    return None


def can_create_in(folder: Path) -> bool:
    """Whether a folder can be created in ``folder`` (tried: permission bits do not bind root)."""
    if not folder.is_dir():
        return False
    try:
        probe = Path(tempfile.mkdtemp(prefix=".write-test-", dir=folder))
    except OSError:
        return False
    probe.rmdir()
    return True


def nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def method_of(cfg: Any) -> str:
    """The method a config trains: ``sup``, ``supcon``, ``simclr``, ``byol``, ... (W&B ``job_type``)."""
    model_cls = str(cfg.model.class_path).rsplit(".", 1)[-1]
    method = MODEL_CLASS_METHODS.get(model_cls, model_cls.removesuffix("Model").lower())
    if model_cls == "SupConModel" and cfg.model.init_args.get("supervised") is False:
        method = "simclr"
    return method

def run_name(cfg: Any) -> str:
    """``<method>[-p<sparsity>]-s<seed>`` (or ``run.name``)."""
    if cfg.run.name:
        return str(cfg.run.name)
    name = method_of(cfg)
    pruning = cfg.get("pruning")
    sparsity = pruning.init_args.get("final_sparsity") if pruning and pruning.get("init_args") else None
    if isinstance(sparsity, (int, float)):
        name += f"-p{sparsity:g}"
    seed = cfg.get("seed_everything")
    return f"{name}-s{seed}" if isinstance(seed, int) and not isinstance(seed, bool) else name

def run_tags(cfg: Any) -> list[str]:
    """W&B tags: ``run.tags``, the pruning callback's class and sparsity, or ``dense``."""
    tags = list(cfg.run.tags or [])
    pruning = cfg.get("pruning")
    if pruning:
        tags.append(str(pruning.class_path).rsplit(".", 1)[-1])
        sparsity = pruning.init_args.get("final_sparsity") if pruning.get("init_args") else None
        if sparsity is not None:
            tags.append(f"sparsity={sparsity}")
    else:
        tags.append("dense")
    return tags
