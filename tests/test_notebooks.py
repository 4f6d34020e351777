"""The course notebooks keep the skeleton of STYLE.md, checked without executing them.

`make notebooks` executes them (nbmake, `ci` profile); these tests only read the JSON, so
they take milliseconds: no outputs or execution counts committed, stable unique cell ids,
the repository URL of pyproject.toml in every badge and set-up cell, the skeleton headings,
enough prose, and exactly one cell that reads the profile.
"""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest


def _repository_url_by_regex(pyproject: str) -> str:
    """``[project.urls] Repository`` without a TOML parser (Python 3.10 has no tomllib)."""
    urls = re.search(r"^\[project\.urls\]\s*$(.*?)(?=^\[|\Z)", pyproject, re.M | re.S)
    return re.search(r"^Repository\s*=\s*\"([^\"]+)\"", urls.group(1), re.M).group(1)


def repository_url(pyproject: str) -> str:
    """``[project.urls] Repository`` of a pyproject.toml: the one place naming the repo."""
    if sys.version_info < (3, 11):
        return _repository_url_by_regex(pyproject)
    import tomllib

    return tomllib.loads(pyproject)["project"]["urls"]["Repository"]


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
REPO_URL = repository_url((ROOT / "pyproject.toml").read_text())
HEADINGS = ("What you will learn", "Prerequisites", "Exercises", "Summary", "Further reading")
MIN_MARKDOWN_WORDS = 600
CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # nbformat 4.5
COLAB_URL = re.compile(r"https://colab\.research\.google\.com/github/[^\s)\"']+")
REPO_ASSIGNMENT = re.compile(r"^REPO_URL\s*=\s*[\"']([^\"']*)[\"']", re.M)
# tools/colab_check.py reads the set-up cell's Colab block; `make colab-check` runs it.
_spec = importlib.util.spec_from_file_location("colab_check", ROOT / "tools" / "colab_check.py")
colab_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(colab_check)


# ------------------------------------------------------------------ checkers (pure functions)

def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def markdown(nb: dict) -> str:
    return "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")


def output_problems(nb: dict) -> list[str]:
    """Every committed output or execution count, as a readable message."""
    problems = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i} has {len(cell['outputs'])} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i} has execution_count {cell['execution_count']}")
    return problems


def id_problems(nb: dict) -> list[str]:
    """Cells without an id, with an invalid id, or sharing an id."""
    problems, seen = [], set()
    for i, cell in enumerate(nb["cells"]):
        cid = cell.get("id")
        if cid is None:
            problems.append(f"cell {i} has no id")
        elif not CELL_ID.match(cid):
            problems.append(f"cell {i} has an invalid id {cid!r}")
        elif cid in seen:
            problems.append(f"cell {i} repeats id {cid!r}")
        seen.add(cid)
    return problems


def colab_url(filename: str) -> str:
    """The Colab badge target of ``notebooks/<filename>`` in the repository of pyproject."""
    path = REPO_URL.removeprefix("https://github.com/").rstrip("/")
    return f"https://colab.research.google.com/github/{path}/blob/main/notebooks/{filename}"


def url_problems(nb: dict, filename: str) -> list[str]:
    """REPO_URL defined once as pyproject's URL, used for the install, badges pointing here."""
    problems = []
    code = "\n".join(source(c) for c in code_cells(nb))
    values = REPO_ASSIGNMENT.findall(code)
    if len(values) != 1:
        problems.append(f"REPO_URL must be assigned exactly once, found {len(values)}")
    elif values[0] != REPO_URL:
        problems.append(f"REPO_URL is {values[0]!r}, pyproject.toml says {REPO_URL!r}")
    if "google.colab" not in code or "{REPO_URL}" not in code:
        problems.append("the set-up cell must install f'git+{REPO_URL}' on Colab")
    badges = COLAB_URL.findall(markdown(nb))
    if not badges:
        problems.append("no Open in Colab badge")
    for url in badges:
        if url != colab_url(filename):
            problems.append(f"badge points at {url}, expected {colab_url(filename)}")
    return problems


def heading_problems(nb: dict) -> list[str]:
    """The skeleton headings, each present once and in order."""
    found = [line.lstrip("#").strip() for line in markdown(nb).splitlines()
             if line.startswith("#")]
    problems, last = [], -1
    for name in HEADINGS:
        where = [i for i, h in enumerate(found) if h.lower() == name.lower()]
        if len(where) != 1:
            problems.append(f"heading {name!r} appears {len(where)} times")
        elif where[0] < last:
            problems.append(f"heading {name!r} is out of order")
        else:
            last = where[0]
    return problems


def markdown_words(nb: dict) -> int:
    return len(markdown(nb).split())


def explorer_problems(nb: dict) -> list[str]:
    """Cells that display an explorer's sliders without its picture as a plain output.

    A static copy of a notebook (GitHub, HTML) shows no widgets; ``Explorer.snapshot()``
    displayed in the same cell is the picture it shows instead.
    """
    return [f"cell {i} displays an explorer's .widget without display(....snapshot())"
            for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code"
            and re.search(r"display\(\s*\w+\.widget\s*\)", source(cell))
            and not re.search(r"display\(\s*\w+\.snapshot\(\)\s*\)", source(cell))]


def profile_cells(nb: dict) -> list[int]:
    return [i for i, c in enumerate(nb["cells"])
            if c["cell_type"] == "code" and "get_profile(" in source(c)]


# ------------------------------------------------------------------------ the notebooks

@pytest.mark.skipif(sys.version_info < (3, 11), reason="needs tomllib")
def test_regex_fallback_reads_the_same_repository_url_as_tomllib():
    text = (ROOT / "pyproject.toml").read_text()
    assert _repository_url_by_regex(text) == repository_url(text)
    assert REPO_URL.startswith("https://github.com/")


def test_the_first_three_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    for name in ("01_augmentations.ipynb", "02_encoder_and_projection_head.ipynb",
                 "03_nt_xent_loss.ipynb"):
        assert name in names


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def notebook(request):
    return request.param, load(request.param)


def test_committed_without_outputs(notebook):
    path, nb = notebook
    assert output_problems(nb) == [], (
        f"{path.name}: clear outputs before committing (Kernel > Restart and clear outputs, "
        "or `jupyter nbconvert --clear-output --inplace`)")


def test_cells_have_stable_unique_ids(notebook):
    path, nb = notebook
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5), f"{path.name}: needs nbformat 4.5"
    assert id_problems(nb) == []


def test_repository_url_comes_from_pyproject(notebook):
    path, nb = notebook
    assert url_problems(nb, path.name) == []


def test_skeleton_headings_in_order(notebook):
    _, nb = notebook
    assert heading_problems(nb) == []


def test_mostly_prose(notebook):
    path, nb = notebook
    words = markdown_words(nb)
    assert words >= MIN_MARKDOWN_WORDS, f"{path.name}: {words} words of markdown"


def test_exactly_one_cell_reads_the_profile_near_the_top(notebook):
    path, nb = notebook
    cells = profile_cells(nb)
    assert len(cells) == 1, f"{path.name}: get_profile( in cells {cells}"
    assert cells[0] < 8, f"{path.name}: the parameters cell should be near the top"
    assert "torch.manual_seed(" in "\n".join(source(c) for c in nb["cells"][:cells[0] + 1])


def test_every_explorer_also_shows_a_plain_picture(notebook):
    path, nb = notebook
    assert explorer_problems(nb) == [], path.name


def test_links_to_other_notebooks_resolve(notebook):
    path, nb = notebook
    for target in re.findall(r"\]\(([^)\s]+\.(?:ipynb|md))\)", markdown(nb)):
        if "://" not in target:
            assert (NOTEBOOK_DIR / target).exists(), f"{path.name} links to missing {target}"


def test_every_notebook_has_the_same_colab_install_block():
    """One install procedure (tested by tests/test_colab.py and `make colab-check`) for all,
    including notebooks written later: their set-up cell must carry the same block."""
    blocks = {path.name: colab_check.colab_block(load(path)) for path in NOTEBOOKS}
    reference = blocks[NOTEBOOKS[0].name]
    assert "--no-deps" in reference and "install_missing(" in reference
    for name, block in blocks.items():
        assert block == reference, (
            f"{name}: its set-up cell's `if \"google.colab\" in sys.modules:` block differs "
            f"from {NOTEBOOKS[0].name}'s; copy that block unchanged")


def test_notebook_01_introduces_the_course_and_draws_simclr_first():
    """The course starts with a map of all seven notebooks and the paper's Figure 2."""
    nb = load(NOTEBOOK_DIR / "01_augmentations.ipynb")
    intro = source(nb["cells"][0])
    for number in ("01", "02", "03", "04", "05", "06", "07"):
        assert re.search(rf"^\|\s*{number}\s*\|", intro, re.M), f"no row for notebook {number}"
    first_section = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown"
                         and re.search(r"^## 2\.", source(c), re.M))
    assert any("plot_simclr_overview(" in source(c) for c in code_cells(
        {"cells": nb["cells"][:first_section]})), "draw the overview before Section 2"


def test_course_map_lists_every_notebook():
    course_map = (NOTEBOOK_DIR / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"({path.name})" in course_map, f"notebooks/README.md does not link {path.name}"
    for number in ("04", "05", "06"):
        assert re.search(rf"^\|\s*{number}\b", course_map, re.M), f"no row for notebook {number}"


# ------------------------------------------------------- the checkers catch what they should

def _cell(kind: str, text: str, **extra) -> dict:
    cell = {"cell_type": kind, "id": extra.pop("id", f"c{len(text)}"), "metadata": {},
            "source": text}
    if kind == "code":
        cell |= {"outputs": [], "execution_count": None}
    return cell | extra


def _notebook(*cells: dict) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": list(cells)}


def test_output_checker_catches_outputs_and_execution_counts():
    clean = _notebook(_cell("code", "1 + 1"))
    assert output_problems(clean) == []
    output = {"output_type": "execute_result", "data": {"text/plain": "2"}, "metadata": {},
              "execution_count": 1}
    dirty = _notebook(_cell("code", "1 + 1", outputs=[output], execution_count=1))
    assert output_problems(dirty) == ["cell 0 has 1 output(s)", "cell 0 has execution_count 1"]


def test_id_checker_catches_missing_invalid_and_duplicate_ids():
    nb = _notebook(_cell("code", "a", id="x"), _cell("code", "b", id="x"),
                   _cell("markdown", "c", id="not valid!"))
    del nb["cells"][0]["id"]
    nb["cells"].append(_cell("code", "d", id="x"))
    assert id_problems(nb) == ["cell 0 has no id", "cell 2 has an invalid id 'not valid!'",
                               "cell 3 repeats id 'x'"]


def test_url_checker_catches_a_wrong_badge_and_a_second_url():
    setup = (f'REPO_URL = "{REPO_URL}"\nif "google.colab" in sys.modules:\n'
             '    pip_install(f"git+{REPO_URL}")')
    badge = f"[![Open In Colab](badge.svg)]({colab_url('01_x.ipynb')})"
    good = _notebook(_cell("markdown", badge), _cell("code", setup))
    assert url_problems(good, "01_x.ipynb") == []
    assert url_problems(good, "02_y.ipynb") != []  # badge names another notebook
    twice = _notebook(_cell("markdown", badge), _cell("code", setup),
                      _cell("code", 'REPO_URL = "https://github.com/someone/fork"'))
    assert "REPO_URL must be assigned exactly once, found 2" in url_problems(twice, "01_x.ipynb")


def test_colab_block_reader_finds_one_block_in_the_first_code_cell():
    block = 'if "google.colab" in sys.modules:\n    install()'
    nb = _notebook(_cell("markdown", "# T"), _cell("code", f"import sys\n{block}\nx = 1"),
                   _cell("code", "y = 2"))
    assert colab_check.colab_block(nb) == block
    changed = _notebook(_cell("code", block.replace("install()", "install(upgrade=True)")))
    assert colab_check.colab_block(changed) != block
    for bad in ("x = 1", f"{block}\n{block}"):
        with pytest.raises(ValueError, match="one `if"):
            colab_check.colab_block(_notebook(_cell("code", bad)))


def test_explorer_checker_wants_the_snapshot_beside_the_widget():
    live_only = _notebook(_cell("code", "ex = temperature_explorer()\ndisplay(ex.widget)"))
    assert explorer_problems(live_only) == [
        "cell 0 displays an explorer's .widget without display(....snapshot())"]
    both = _notebook(_cell("code", "display(ex.widget)\ndisplay(ex.snapshot())"))
    assert explorer_problems(both) == []
    assert explorer_problems(_notebook(_cell("markdown", "display(ex.widget)"))) == []


def test_heading_checker_catches_missing_and_misordered_headings():
    text = "\n".join(f"## {h}" for h in HEADINGS)
    assert heading_problems(_notebook(_cell("markdown", text))) == []
    swapped = text.replace("## Summary", "## TMP").replace("## Exercises", "## Summary") \
        .replace("## TMP", "## Exercises")
    assert heading_problems(_notebook(_cell("markdown", swapped))) == [
        "heading 'Summary' is out of order"]
    assert "heading 'Prerequisites' appears 0 times" in heading_problems(
        _notebook(_cell("markdown", "## What you will learn")))
