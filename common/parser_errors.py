"""One line for a command-line parser error (jsonargparse's messages are ten to sixty lines).

``condense_parser_error(message)`` turns what jsonargparse raises for bad flags or YAML into one
line that names the parameter, what was given and what is allowed: unknown options list the
options of that class, unknown class paths list the classes of that slot, type errors say the
expected type, YAML errors say where the YAML breaks. Anything it does not recognise is folded
into one line as it is.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterable

#: the slots whose class path a user chooses, and where their classes live
CLASS_SLOTS = {
    "model": ("lightning_modules", "lightning_modules.base.RepresentationModule"),
    "data": ("datamodules", "datamodules.base.ImageDataModule"),
    "pruning": ("callbacks.pruning", "callbacks.pruning.base.PruningCallback"),
}
#: base classes that are not meant to be chosen
ABSTRACT = {"RepresentationModule", "PhasedRepresentationModule", "ImageDataModule", "PruningCallback"}
HELP = "see python cli.py fit --help"


def import_path(path: str) -> object | None:
    """The object a dotted ``module.name`` path names, or ``None`` when it cannot be imported."""
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def known_classes(slot: str) -> list[str]:
    """Class paths a user can give for ``slot`` (``model``/``data``/``pruning``), as importable names."""
    package_name, base_path = CLASS_SLOTS[slot]
    base = import_path(base_path)
    package = importlib.import_module(package_name)
    names = list(getattr(package, "__all__", dir(package)))
    out = []
    for name in names:
        obj = getattr(package, name, None)
        if inspect.isclass(obj) and isinstance(base, type) and issubclass(obj, base) and name not in ABSTRACT:
            out.append(f"{package_name}.{name}")
    return out


def class_options(class_path: str) -> list[str]:
    """``__init__`` parameters of ``class_path`` (through ``**kwargs`` to the parents' parameters)."""
    cls = import_path(class_path)
    if not inspect.isclass(cls):
        return []
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names += [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return list(dict.fromkeys(names))


def _fold(lines: Iterable[str]) -> str:
    text = " ".join(line.strip() for line in lines if line.strip())
    return re.sub(r"\s+", " ", text)


def _type_names(text: str) -> list[str]:
    found = re.findall(r"Expected a (?:<class '([\w.]+)'>|(typing\.Literal\[[^\]]*\]))", text)
    names = []
    for cls, literal in found:
        if literal:
            names.append(literal.removeprefix("typing.").replace("Literal", "one of "))
        else:
            name = cls.rsplit(".", 1)[-1]
            names.append("null" if name == "NoneType" else name)
    return list(dict.fromkeys(names))


def condense_parser_error(message: str) -> str:
    """One line for a jsonargparse error message (see module docstring)."""
    text = str(message).strip()
    lines = text.splitlines()
    first = lines[0] if lines else ""

    if first.startswith("unrecognized arguments:"):
        unknown = [a for a in first.removeprefix("unrecognized arguments:").split() if a not in ("fit", "validate", "test", "predict")]
        flags = [a for a in unknown if a.startswith("-")] or unknown
        return f"unknown option {' '.join(flags)}; {HELP}"

    if first.startswith("Problems parsing config"):
        positions = re.findall(r"line (\d+), column (\d+)", text)
        what = [line.strip() for line in lines[1:] if line.strip() and not line.strip().startswith("in \"")]
        at = f" (line {positions[-1][0]}, column {positions[-1][1]})" if positions else ""
        return f"a --config file is not valid YAML: {what[0] if what else first}{at}"

    key_match = re.match(r'Parser key "([^"]+)":\s*(.*)', first)
    if not key_match:
        return _fold(lines)
    key, rest = key_match.group(1), key_match.group(2)
    given = re.search(r"(?:Given|Got) value: (.*)", text)
    given_value = given.group(1).strip() if given else None

    if rest.startswith("File does not exist"):
        return f"--{key}: {rest}"

    slot = key.split(".")[0]
    class_path = re.search(r"Problem with given class_path '([^']+)'", text)
    path = class_path.group(1) if class_path else None

    if slot in CLASS_SLOTS and ("has no attribute" in text or "either not accessible or invalid" in text or "No module named" in text):
        value = given_value if given_value and "NestedArg" not in given_value else path
        return f"{slot}={value!r} is not a known class; choose one of {', '.join(known_classes(slot))}"

    import_failure = re.search(r"Problem with given class_path '([^']+)':\s*\n\s*((?:No module named|module '[^']+' has no attribute)[^\n]*)", text)
    if import_failure and slot not in CLASS_SLOTS:
        return f"{key}: class_path {import_failure.group(1)!r} cannot be imported ({import_failure.group(2).strip()})"

    option = re.search(r"Option '([^']+)' is not accepted", text)
    if option:
        where = f"{slot}.init_args.{option.group(1)}"
        options = class_options(path) if path else []
        of = f" of {path}" if path else ""
        listing = f"; its options are: {', '.join(options)}" if options else f"; {HELP}"
        return f"{where} is not an option{of}{listing}"

    required = re.search(r"the following arguments are required: (.*)", text)
    if required:
        of = f" of {path}" if path else ""
        return f"{slot}{of} needs {required.group(1).strip()}: give them with --{slot}.init_args.<name> <value>"

    nested = re.search(r'Parser key "([^"]+)":\s*\n\s*Expected a (.*?)\. Got value: (.*)', text)
    if nested and slot in CLASS_SLOTS:
        name = f"{slot}.init_args.{nested.group(1)}"
        expected = _type_names("Expected a " + nested.group(2))
        return f"{name}={nested.group(3).strip()!r} is not valid; expected {' or '.join(expected) or nested.group(2)}"

    expected = _type_names(text)
    if expected:
        shown = given_value if given_value is not None else "the given value"
        return f"{key}={shown!r} is not valid; expected {' or '.join(expected)}"
    return f"--{key}: {_fold([rest, *lines[1:]])}"


__all__ = ["class_options", "condense_parser_error", "known_classes"]
