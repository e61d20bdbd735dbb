"""``compose:`` in config files (common/config_compose.py) and the layout of configs/.

A composed config must resolve exactly as the same config written out in full — the same
``--print_config`` output, the same parsed config (what W&B records, the ``config`` list included)
and so the same ``--run.resume auto`` folder — and a missing, cyclic or malformed ``compose`` is one
``error:`` line with exit code 2. The shipped experiment configs compose only ``configs/base/``
(and ``configs/data/`` fragments) and keep their header with the command that runs them.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO

import cli
from common.config_compose import expand_config_args
from common.errors import ConfigError

SYNTHETIC = REPO / "configs" / "data" / "synthetic.yaml"

BASE = """\
seed_everything: 0
trainer:
  max_epochs: 5
  accelerator: cpu
  callbacks:
    - class_path: callbacks.metrics.QScore
model:
  class_path: lightning_modules.SupervisedClassifier
  init_args:
    backbone: wrn
    depth: 10
    widen_factor: 1
    lr: 0.5
"""

# the same config as BASE + the overrides of COMPOSED, written out in full
FULL = """\
seed_everything: 0
run:
  group: composed
trainer:
  max_epochs: 2
  accelerator: cpu
  callbacks:
    - class_path: callbacks.metrics.QScore
model:
  class_path: lightning_modules.SupervisedClassifier
  init_args:
    backbone: wrn
    depth: 10
    widen_factor: 1
    lr: 0.1
data:
  class_path: datamodules.SyntheticDataModule
  init_args:
    train_size: 2000
    test_size: 500
    batch_size: 32
    views: 1
    augmentation: supervised
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def composed(tmp_path: Path) -> Path:
    write(tmp_path, "base/model.yaml", BASE)
    return write(
        tmp_path,
        "exp/composed.yaml",
        f"# header\ncompose: [../base/model.yaml, {{data: {SYNTHETIC}}}]\nrun:\n  group: composed\n"
        "trainer:\n  max_epochs: 2\nmodel:\n  init_args:\n    lr: 0.1\ndata:\n  init_args:\n    batch_size: 32\n",
    )


def print_config(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(["fit", *args, "--print_config"])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


class _Parsed(Exception):
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config


class _ParseOnly(cli.ContrastivePruningCLI):
    def before_instantiate_classes(self) -> None:
        raise _Parsed(self.config.get(str(self.subcommand), self.config).as_dict())


def parsed(*args: str) -> dict[str, Any]:
    """The parsed ``fit`` config as a dict (what ``WandbConfigCallback`` logs), ``config`` list as strings."""
    with pytest.raises(_Parsed) as found:
        _ParseOnly(cli.RepresentationModule, cli.ImageDataModule, subclass_mode_model=True, subclass_mode_data=True,
                   args=["fit", *args], auto_configure_optimizers=False, parser_kwargs={"exit_on_error": False})  # fmt: skip
    config = found.value.config
    config["config"] = [None if p is None else os.path.realpath(p.absolute) for p in config["config"]]
    return config


# -- the expansion ---------------------------------------------------------------------------------
def test_bases_come_before_the_file_depth_first(tmp_path: Path) -> None:
    c = write(tmp_path, "c.yaml", "seed_everything: 1\n")
    b = write(tmp_path, "sub/b.yaml", "compose: [../c.yaml]\n")
    frag = write(tmp_path, "frag.yaml", "# a fragment\nclass_path: datamodules.SyntheticDataModule\n")
    a = write(tmp_path, "a.yaml", "compose: [sub/b.yaml, {data: frag.yaml}]\n")
    args, inserted = expand_config_args(["fit", "--config", str(a), "--seed_everything", "3", f"--config={a}"])
    fragment = "data:\n  # a fragment\n  class_path: datamodules.SyntheticDataModule\n"
    once = ["--config", str(c), "--config", str(b), "--config", fragment]
    assert args == ["fit", *once, "--config", str(a), "--seed_everything", "3", *once, f"--config={a}"]
    assert inserted == [os.path.realpath(c), os.path.realpath(b), None] * 2
    assert frag.is_file()
    plain = ["fit", "--config", str(c), "--config", "{seed_everything: 2}", "--trainer.max_epochs", "1"]
    assert expand_config_args(plain) == (plain, [])  # no compose: the arguments as given


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.yaml": "compose: [missing.yaml]\n"}, "{tmp}/a.yaml: compose entry 'missing.yaml' does not exist ({tmp}/missing.yaml is not a file)"),
        ({"a.yaml": "compose: [b.yaml]\n", "b.yaml": "compose: [a.yaml]\n"},
         "compose cycle: {real}/a.yaml -> {real}/b.yaml -> {real}/a.yaml; a config cannot include itself"),
        ({"a.yaml": "compose: a.yaml\n"},
         ("{tmp}/a.yaml: compose='a.yaml' is not allowed; give a non-empty list of config files (relative to this file) "
          "and {key: fragment} entries")),
        ({"a.yaml": "compose: [3]\n"}, "{tmp}/a.yaml: compose entry 3 is not allowed; give a file path (relative to this file)"),
        ({"a.yaml": "compose: [{data: f.yaml, model: f.yaml}]\n", "f.yaml": "class_path: x\n"},
         ("{tmp}/a.yaml: compose entry {'data': 'f.yaml', 'model': 'f.yaml'} is not allowed; a fragment entry is one key "
          "and its file, e.g. {data: ../data/cifar10.yaml}")),
        ({"a.yaml": "compose: [{data: f.yaml}]\n", "f.yaml": "compose: [a.yaml]\n"},
         "{tmp}/f.yaml: a fragment (data: ...) cannot have its own compose"),
    ],
    ids=["missing", "cycle", "not_a_list", "not_a_path", "two_key_fragment", "fragment_composes"],
)
def test_bad_compose_is_one_config_error(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(ConfigError) as err:
        expand_config_args(["fit", "--config", str(tmp_path / "a.yaml")])
    assert str(err.value) == message.replace("{tmp}", str(tmp_path)).replace("{real}", os.path.realpath(tmp_path))


@pytest.mark.parametrize("case", ["missing", "cycle", "flag", "text"])
def test_bad_compose_on_the_command_line_is_one_error_line(tmp_path: Path, case: str) -> None:
    write(tmp_path, "a.yaml", "compose: [b.yaml]\n")
    write(tmp_path, "b.yaml", "compose: [a.yaml]\n" if case == "cycle" else "seed_everything: 1\n")
    args = {
        "missing": ["--config", str(write(tmp_path, "m.yaml", "compose: [nowhere.yaml]\n"))],
        "cycle": ["--config", str(tmp_path / "a.yaml")],
        "flag": ["--config", str(tmp_path / "b.yaml"), "--compose", "[a.yaml]"],
        "text": ["--config", "{compose: [a.yaml]}"],
    }[case]
    code, out, err = print_config(*args)
    expected = {
        "missing": f"error: {tmp_path}/m.yaml: compose entry 'nowhere.yaml' does not exist ({tmp_path}/nowhere.yaml is not a file)",
        "cycle": f"error: compose cycle: {os.path.realpath(tmp_path)}/a.yaml -> {os.path.realpath(tmp_path)}/b.yaml -> "
                 f"{os.path.realpath(tmp_path)}/a.yaml; a config cannot include itself",
        "flag": "error: --compose is not an option; `compose:` is a key of a config file given with --config",
        "text": "error: --config '{compose: [a.yaml]}': `compose:` works in a config file, not in a config given as text",
    }[case]  # fmt: skip
    assert (code, out, err.strip()) == (2, "", expected)


# -- a composed config is the config written out in full -------------------------------------------
def test_composed_config_resolves_as_written_out(tmp_path: Path) -> None:
    exp, full = composed(tmp_path), write(tmp_path, "full/composed.yaml", FULL)
    code_c, out_c, _ = print_config("--config", str(exp))
    code_f, out_f, _ = print_config("--config", str(full))
    assert (code_c, code_f) == (0, 0) and out_c == out_f
    assert "compose" not in yaml.safe_load(out_c)
    extra = ["--config", str(REPO / "configs/metrics/table6.yaml"), "--trainer.max_epochs", "3"]
    as_composed, as_full = parsed("--config", str(exp), *extra), parsed("--config", str(full), *extra)
    assert as_composed["config"] == [os.path.realpath(exp), os.path.realpath(REPO / "configs/metrics/table6.yaml")]
    as_composed["config"] = as_full["config"]
    assert as_composed == as_full  # the W&B config; the run-folder hash follows from it
    resume = ["--run.resume", "auto", "--run.root", str(tmp_path / "runs")]
    assert cli.run_dir_for(["fit", "--config", str(exp), *extra, *resume]) == cli.run_dir_for(
        ["fit", "--config", str(full), *extra, *resume]
    )


def test_run_folder_config_yaml_is_the_full_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    small = ["--data.init_args.train_size", "64", "--data.init_args.test_size", "32", "--data.init_args.num_workers", "0",
             "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "0",
             "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
             "--test_after_fit", "false", "--run.wandb_mode", "disabled"]  # fmt: skip
    saved = {}
    for name, config in (("composed", composed(tmp_path)), ("full", write(tmp_path, "full/composed.yaml", FULL))):
        cli.main(["fit", "--config", str(config), *small, "--run.dir", str(tmp_path / name)])
        os.environ.pop(cli.RUN_DIR_ENV, None)
        saved[name] = yaml.safe_load((tmp_path / name / "config.yaml").read_text())
        assert saved[name]["run"].pop("dir") == str(tmp_path / name)
    assert saved["composed"] == saved["full"] and "compose" not in saved["composed"]
    assert saved["composed"]["trainer"]["callbacks"][0]["class_path"] == "callbacks.metrics.QScore"


# -- the shipped configs ---------------------------------------------------------------------------
SHIPPED = sorted((REPO / "configs" / "experiments").glob("*.yaml")) + [
    REPO / "configs" / name for name in ("sup.yaml", "supcon.yaml", "simclr.yaml")
]


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: p.stem)
def test_shipped_configs_compose_configs_base(config: Path) -> None:
    args, inserted = expand_config_args(["fit", "--config", str(config)])
    files = [Path(a) for a in args[2::2] if a.endswith(".yaml")]
    assert files[-1] == config and inserted
    assert all(f.parent == REPO / "configs" / "base" for f in files[:-1]), files
    text = config.read_text()
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("compose:"))
    assert at > 0 and all(line.startswith("#") for line in lines[:at])  # the header comment, then compose
    if config.parent.name == "experiments":
        assert f"python cli.py fit --config configs/experiments/{config.name}" in text  # the header's command
        assert yaml.safe_load(text)["run"]["group"] == config.stem
