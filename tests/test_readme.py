"""The README's quick-start snippets run as written (in a scratch directory)."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^## (Quick start[^\n]*)\n.*?```python\n(.*?)```", README.read_text(), re.S | re.M)


@pytest.mark.parametrize("title, code", BLOCKS, ids=[t for t, _ in BLOCKS])
def test_readme_quick_start_runs(title, code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, f"README: {title}", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip()


def test_readme_has_the_quick_starts():
    assert len(BLOCKS) >= 2
