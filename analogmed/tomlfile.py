"""TOML files validated by a pydantic model: study, benchmark-build and search files share this.

A problem is one :class:`~analogmed.errors.UserError` line that names the file, the key path and the fix.
A bare name (no suffix, no such file) is looked up in the shipped ``studies/`` folder.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from analogmed.errors import UserError

M = TypeVar("M", bound=BaseModel)


def _fmt_error(exc: ValidationError, source: str, kind: str, docs: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = f"unknown key; check the spelling against {docs}"
    return f"{kind} file {source}: {loc}: {msg}"


def parse_model(model: type[M], data: dict[str, Any], source: str, kind: str, docs: str) -> M:
    """Validate a parsed dict against ``model`` (UserError with the key path on the first problem).

    ``kind`` names the file type in messages ("study", "benchmark", "search"); ``docs`` is where its
    keys are documented.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(_fmt_error(exc, source, kind, docs)) from None


def load_model(model: type[M], path: str | Path, kind: str, docs: str, what: str) -> M:
    """Read ``path`` (or the shipped ``studies/<name>.toml``) and validate it against ``model``.

    ``what`` describes the expected file in the not-found message (e.g. "a .toml study file").
    """
    p = Path(path)
    if not p.exists() and p.suffix == "":
        from analogmed.paths import data_dir

        cand = data_dir("studies") / f"{p.name}.toml"
        p = cand if cand.exists() else p
    if not p.is_file():
        raise UserError(f"{kind} file {path} not found; give a path to {what}")
    try:
        data = tomllib.loads(p.read_text())
    except UnicodeDecodeError:
        raise UserError(f"{kind} file {p} is not UTF-8 text; give {what}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{kind} file {p}: malformed TOML ({exc}); fix the syntax") from None
    return parse_model(model, data, str(p), kind, docs)
