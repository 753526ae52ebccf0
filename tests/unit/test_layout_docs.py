"""The layout a newcomer reads is the code's: the README's round walk names files that exist, and the design
page's package tree names every module of the product (a module added, moved or removed fails here until
the docs follow)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("budget", "annotation", "connectors", "modeling")


def _section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def test_every_path_in_the_readme_layout_exists():
    layout = _section((ROOT / "README.md").read_text(), "## Layout\n")
    # whole paths (budget/round/steps.py, modeling/infer.py) and module names (round/context, annotation/selection)
    paths = [p for p in re.findall(r"`([\w./]+)`", layout) if "/" in p and not p.startswith(("http", "."))]
    assert len(paths) >= 12, paths
    missing = [p for p in paths
               if not any((ROOT / q).exists() for q in (p, f"{p}.py", f"budget/{p}", f"budget/{p}.py"))]
    assert not missing, f"README's layout names files that do not exist: {missing}"


def test_the_design_page_names_every_module_of_the_product():
    tree = _section((ROOT / "docs" / "design.md").read_text(), "## Packages\n")
    words = set(re.findall(r"[A-Za-z_]+", tree))
    modules = sorted(p.relative_to(ROOT) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                     if p.stem not in {"__init__", "__main__", "_validation"})
    unnamed = [str(m) for m in modules if m.stem not in words]
    assert not unnamed, f"docs/design.md's package tree does not name: {unnamed}"
    folders = sorted({m.parent.name for m in modules if m.parent.parent.name == "budget"})
    assert all(f"{folder}/" in tree for folder in folders), folders
