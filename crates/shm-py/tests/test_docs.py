"""Every public class and method of the native module has a docstring with
a `>>>` example (one style throughout, no `Example::` blocks), and every
property a docstring."""

import shm._shm as native


def public_classes():
    return sorted((n, c) for n, c in vars(native).items() if isinstance(c, type) and not n.startswith("_"))


def test_every_class_and_method_has_an_example():
    missing = []
    for cname, cls in public_classes():
        if ">>>" not in (cls.__doc__ or ""):
            missing.append(cname)
        for name in vars(cls):
            if name.startswith("_"):
                continue
            attr = getattr(cls, name)
            doc = getattr(attr, "__doc__", None) or ""
            if type(vars(cls)[name]).__name__ == "getset_descriptor":
                if not doc.strip():
                    missing.append(f"{cname}.{name} (no docstring)")
            elif ">>>" not in doc:
                missing.append(f"{cname}.{name}")
    assert missing == []


def test_one_example_style():
    for cname, cls in public_classes():
        docs = [cls.__doc__ or ""] + [getattr(getattr(cls, n), "__doc__", None) or "" for n in vars(cls)]
        assert not any("Example::" in d for d in docs), cname
