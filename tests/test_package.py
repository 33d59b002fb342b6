"""The hand-written w2vc/__init__.py: every public name it lists resolves, and no chapter's model class is missing."""
import importlib
import inspect
import pkgutil

import pytest

import w2vc


@pytest.mark.parametrize("name", sorted(w2vc._EXPORTS))
def test_every_listed_name_resolves(name):
    value = getattr(w2vc, name)
    module = importlib.import_module(f"w2vc.{w2vc._EXPORTS[name]}")
    assert value is getattr(module, name)


def test_every_model_class_is_exported():
    """Each Wav2Vec2Conformer* class defined in any module of the package is reachable as w2vc.<name>."""
    missing = []
    modules = [m.name for m in pkgutil.iter_modules(w2vc.__path__) if m.name not in ("__main__", "cli")]
    assert "model" in modules
    for module_name in modules:
        module = importlib.import_module(f"w2vc.{module_name}")
        for name, value in vars(module).items():
            if (inspect.isclass(value) and name.startswith("Wav2Vec2Conformer")
                    and value.__module__ == module.__name__ and name not in w2vc._EXPORTS):
                missing.append(f"{module_name}.{name}")
    assert not missing, f"add these to w2vc/__init__.py's _EXPORTS: {missing}"


def test_unknown_name_is_a_clear_error():
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        w2vc.NoSuchThing  # noqa: B018
