"""The exported surface (httpx's habit): ``facelake.__all__`` is complete, every name in it is
importable and documented, and the error tree is whole.

A name the CLI, the API or a user script relies on must not disappear or lose its docs by
accident; a new public name must be exported on purpose.
"""

from __future__ import annotations

import inspect
import types

import facelake
from facelake import errors


def test_all_lists_every_public_name_and_only_those() -> None:
    public = {name for name, value in vars(facelake).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    public -= {"annotations"}  # the __future__ feature object
    assert sorted(public) == sorted(facelake.__all__)


def test_every_exported_name_is_importable_and_documented() -> None:
    for name in facelake.__all__:
        value = getattr(facelake, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            doc = value.__doc__ or ""
            # A dataclass without a docstring gets its signature as one: that documents nothing.
            assert doc.strip() and not doc.startswith(f"{name}("), f"facelake.{name} has no docstring"


def test_every_error_class_is_exported_and_derives_from_facelake_error() -> None:
    classes = [v for v in vars(errors).values()
               if inspect.isclass(v) and issubclass(v, Exception) and v.__module__ == errors.__name__]
    assert errors.FacelakeError in classes and len(classes) > 5
    for cls in classes:
        assert issubclass(cls, errors.FacelakeError), cls
        assert cls.__name__ in facelake.__all__, f"{cls.__name__} is not exported"
