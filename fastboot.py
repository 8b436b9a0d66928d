"""Start-up shortcuts, applied by `app.py` before the web stack is imported.

Importing Gradio does work that only serves its developers, for every component class:

- it regenerates the class' `.pyi` type stub (reads and `ast.parse`s the component's source file,
  ~1 s of CPU here, a third of `import gradio`); stubs only serve type checkers;
- it compiles a Jinja template per event listener to fill in its docstring (~0.3 s); the same few
  docstrings are compiled again and again.

With the hook installed, stub writing is skipped and the docstring templates are compiled once
each (the docstrings come out the same). Nothing else in Gradio changes.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable


def _no_stub(*_args, **_kwargs) -> None:
    """Stand-in for gradio.component_meta.create_or_modify_pyi."""


@functools.cache
def _template(source: str):
    """A compiled Jinja template per docstring (Gradio compiled one per component and event)."""
    from jinja2 import Template

    return Template(source)


def _patch_component_meta(module) -> None:
    if hasattr(module, "create_or_modify_pyi"):
        module.create_or_modify_pyi = _no_stub


def _patch_events(module) -> None:
    if hasattr(module, "Template"):
        module.Template = _template


PATCHES: dict[str, Callable] = {"gradio.component_meta": _patch_component_meta, "gradio.events": _patch_events}


class _GradioImportHook(importlib.abc.MetaPathFinder):
    """Finds the patched Gradio modules as usual, and patches each right after it is executed."""

    def find_spec(self, name, path, target=None):
        patch = PATCHES.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        load = spec.loader.exec_module

        def exec_module(module) -> None:
            load(module)
            patch(module)
            if all(m in sys.modules for m in PATCHES):
                uninstall()

        spec.loader.exec_module = exec_module
        return spec


_hook = _GradioImportHook()
_lock = threading.Lock()


def skip_gradio_stub_writing() -> bool:
    """Install the import hook; False (and nothing done) when Gradio is already imported."""
    with _lock:
        if any(m in sys.modules for m in PATCHES):
            return False
        if _hook not in sys.meta_path:
            sys.meta_path.insert(0, _hook)
        return True


def uninstall() -> None:
    """Remove the hook (it removes itself once both Gradio modules are loaded)."""
    with _lock:
        if _hook in sys.meta_path:
            sys.meta_path.remove(_hook)
