"""What users read cites what users can read: the project's chip notes (docs/chip-notes.md) and public sources,
never the team's internal spec files (which are not shipped)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INTERNAL = re.compile(r"\b(CHIP|SAMNA)\.md\b|shared/spec")
NOTES = ROOT / "docs" / "chip-notes.md"
# packages whose docstrings and strings this check covers (compiler/ and sim/ are being edited elsewhere: their
# module docstrings still name the internal files and are left to that work)
USER_FACING = ["speckstream", "runtime", "codec", "bench", "examples"]


def _strings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_readme_and_docs_do_not_cite_internal_spec_files():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        hits = [m.group(0) for m in INTERNAL.finditer(doc.read_text())]
        assert not hits, f"{doc.name} cites {hits}"


@pytest.mark.parametrize("package", USER_FACING)
def test_strings_and_docstrings_do_not_cite_internal_spec_files(package):
    bad = [f"{p.relative_to(ROOT)}:{line}" for p in sorted((ROOT / package).rglob("*.py"))
           for line, text in _strings(p) if INTERNAL.search(text)]
    assert not bad, bad


def test_every_hwcheck_evidence_names_a_public_source_or_the_chip_notes():
    from speckstream.hwcheck import CHECKS

    public = ("sinabs", "datasheet", "Nat. Commun.", "samna", "docs/chip-notes.md")
    for check in CHECKS:
        assert not INTERNAL.search(check.evidence), check.name
        assert any(s.lower() in check.evidence.lower() for s in public), (check.name, check.evidence)
        assert f"`{check.name}`" in NOTES.read_text(), f"docs/chip-notes.md does not explain {check.name}"


def test_the_chip_notes_cite_their_sources_and_every_cited_number_is_listed():
    text = NOTES.read_text()
    sources = re.findall(r"^(\d+)\. ", text.split("## Sources")[1].split("\n## ")[0], re.M)
    assert len(sources) >= 8
    for n in ("synsense.ai", "doi.org/10.1038/s41467-024-47811-6", "github.com/synsense/sinabs",
              "synsense-sys-int.gitlab.io/samna"):
        assert n in text
    cited = {int(c) for group in re.findall(r"\[([\d, ]+)(?:, #\d+)?\]", text) for c in group.split(",")}
    assert cited and cited <= {int(s) for s in sources}, sorted(cited - {int(s) for s in sources})


def test_paths_the_code_points_readers_to_exist():
    for package in USER_FACING + ["sim", "compiler"]:
        for p in (ROOT / package).rglob("*.py"):
            for _, text in _strings(p):
                for ref in re.findall(r"docs/[\w.-]+\.md", text):
                    assert (ROOT / ref).exists(), f"{p.relative_to(ROOT)} points to {ref}"
