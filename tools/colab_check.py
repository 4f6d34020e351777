"""`make colab-check`: the notebooks' set-up cell, run in a Colab-like runtime, changes nothing.

Colab's runtime is built on pinned packages; installing the course must add to it, never
upgrade it (issue 12). No Colab is reachable from CI, so this builds a virtual environment
holding the versions of tools/colab_runtime.txt (the one list to refresh when Colab
changes) and, with a stand-in ``google.colab`` module, executes the set-up cell of every
notebook exactly as it is in the notebook, with ``SIMCLR_COURSE_SOURCE`` pointing the
install at this checkout (a copy of the files a build reads) instead of the repository's
URL. It then checks that:

- every notebook has the same Colab block in its set-up cell (the cell, not a copy, runs);
- ``pip freeze --all`` lists every preinstalled package at the same version afterwards,
  and nothing new but ``simclr-course`` (Colab has all of its requirements);
- each set-up cell printed one line saying what it installed;
- ``simclr_lib`` imports from the installed copy, and Colab's custom widget manager was
  turned on only if ipywidgets is 8 or newer;
- both explorers build and redraw when a slider moves, under the runtime's ipywidgets 7.

The environment lives in build/colab-venv and is reused only while it is exactly as built:
its recorded key (pin list and Python version) matches and ``pip freeze --all`` equals the
freeze taken right after building it. After a run the course is uninstalled again, and an
environment that does not return to that freeze is deleted, so the next run rebuilds it.

Usage:
    python3 tools/colab_check.py [--venv build/colab-venv] [--rebuild]

Exits 0 when every check passes, 1 with the reasons otherwise. Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "tools" / "colab_runtime.txt"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COURSE = "simclr-course"
SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE", "simclr_lib")  # what a build reads
RESULT = "COLAB-CHECK-RESULT "  # marks the inside run's JSON line in its output
COLAB_TEST = "'google.colab' in sys.modules"  # the set-up cell's `if` (ast.unparse form)


# ---------------------------------------------------------------- reading the notebooks

def setup_cell(nb: dict) -> str:
    """Source of a notebook's set-up cell: its first code cell."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            src = cell["source"]
            return "".join(src) if isinstance(src, list) else src
    raise ValueError("the notebook has no code cell")


def colab_block(nb: dict) -> str:
    """The ``if "google.colab" in sys.modules:`` statement of the set-up cell, as text.

    Raises:
        ValueError: if the set-up cell has no such statement at its top level, or several.
    """
    code = setup_cell(nb)
    blocks = [node for node in ast.parse(code).body
              if isinstance(node, ast.If) and ast.unparse(node.test) == COLAB_TEST]
    if len(blocks) != 1:
        raise ValueError(f"the set-up cell must have one `if {COLAB_TEST}:` block at its top "
                         f"level, found {len(blocks)}")
    return ast.get_source_segment(code, blocks[0])


def up_to_colab_block(nb: dict) -> str:
    """The set-up cell from its start to the end of its Colab block (before the imports)."""
    code, block = setup_cell(nb), colab_block(nb)
    return code[:code.index(block) + len(block)] + "\n"


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------- inside the Colab-like runtime

def _fake_google_colab() -> list[str]:
    """Install a stand-in ``google.colab`` (with ``output``); return the list of its calls."""
    calls: list[str] = []
    try:
        import google  # a namespace package some distributions install
    except ImportError:
        google = types.ModuleType("google")
        google.__path__ = []
        sys.modules["google"] = google
    colab = types.ModuleType("google.colab")
    output = types.ModuleType("google.colab.output")
    output.enable_custom_widget_manager = lambda: calls.append("enable_custom_widget_manager")
    colab.output = output
    google.colab = colab
    sys.modules.update({"google.colab": colab, "google.colab.output": output})
    return calls


def inside(notebooks: list[Path]) -> dict:
    """Run every set-up cell as Colab would, then import and use the library."""
    problems: list[str] = []
    calls = _fake_google_colab()
    printed = {}
    for path in notebooks:
        out = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(out):
            exec(compile(setup_cell(_load(path)), f"{path.name} set-up cell", "exec"),
                 {"__name__": "__main__"})
        from simclr_lib.colab import PREFIX

        lines = [line for line in out.getvalue().splitlines() if line.startswith(PREFIX)]
        printed[path.name] = {"lines": lines, "seconds": round(time.perf_counter() - t0, 1)}
        if len(lines) != 1:
            problems.append(f"{path.name}: the set-up cell printed {len(lines)} install lines")

    import ipywidgets

    import simclr_lib
    from simclr_lib.shapes import make_shapes
    from simclr_lib.widgets import augmentation_explorer, temperature_explorer

    if Path(sys.prefix) not in Path(simclr_lib.__file__).resolve().parents:
        problems.append(f"simclr_lib imported from {simclr_lib.__file__}, not the venv")
    major = int(ipywidgets.__version__.split(".")[0])
    expected = ["enable_custom_widget_manager"] * len(notebooks) if major >= 8 else []
    if calls != expected:
        problems.append(f"ipywidgets {ipywidgets.__version__}: widget manager calls {calls}")

    images, _ = make_shapes(4, seed=0)
    explorers = {"augmentation_explorer": (augmentation_explorer(images, n=3), "seed", 5),
                 "temperature_explorer": (temperature_explorer(n=4), "temperature", 0.05)}
    for name, (explorer, control, value) in explorers.items():
        explorer.update()
        before = bytes(explorer.image.value)
        explorer.controls[control].value = value  # what moving the slider does
        after = bytes(explorer.image.value)
        if not (before.startswith(b"\x89PNG") and after.startswith(b"\x89PNG")):
            problems.append(f"{name}: no PNG in its Image widget")
        if after == before:
            problems.append(f"{name}: moving {control} did not change the picture")
    return {"problems": problems, "printed": printed, "ipywidgets": ipywidgets.__version__,
            "simclr_lib": simclr_lib.__file__, "widget_manager_calls": calls}


# ------------------------------------------------------------------- outside: the venv

def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, text=True, capture_output=True, **kwargs)


def _freeze(python: Path) -> list[str]:
    result = _run([str(python), "-m", "pip", "freeze", "--all"])
    if result.returncode != 0:
        raise RuntimeError(f"pip freeze failed:\n{result.stderr}")
    return sorted(result.stdout.splitlines())


def _name(line: str) -> str:
    return line.split("==")[0].split(" @ ")[0].strip().lower().replace("_", "-")


def _key(python: Path) -> str:
    version = _run([str(python), "-c", "import sys; print(sys.version)"]).stdout
    return hashlib.sha256((PINS.read_text() + version).encode()).hexdigest()


def prepare_venv(venv: Path, rebuild: bool) -> tuple[Path, list[str], str]:
    """The Colab-like environment, reused if it is exactly as built, else built afresh.

    Returns:
        Its Python, the freeze taken right after building it, and what was done.
    """
    python, state = venv / "bin" / "python", venv / ".colab-check.json"
    if not rebuild and python.exists() and state.exists():
        recorded = json.loads(state.read_text())
        if recorded["key"] == _key(python) and _freeze(python) == recorded["freeze"]:
            return python, recorded["freeze"], "reused (pins and freeze unchanged)"
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # --no-compile: no .pyc for all of torch up front (a third of the CPU time of the build)
    result = _run([str(python), "-m", "pip", "install", "--quiet", "--no-compile", "-r",
                   str(PINS)])
    if result.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise RuntimeError(f"could not build the Colab-like environment from {PINS}:\n"
                           f"{result.stderr[-3000:]}")
    freeze = _freeze(python)
    state.write_text(json.dumps({"key": _key(python), "freeze": freeze}, indent=1))
    return python, freeze, "built"


def compare(before: list[str], after: list[str]) -> tuple[list[str], list[str]]:
    """Preinstalled packages that changed or vanished, and packages added besides the course."""
    after_by_name = {_name(line): line for line in after}
    before_names = {_name(line) for line in before}
    changed = [f"{line} -> {after_by_name.get(_name(line), 'uninstalled')}"
               for line in before if after_by_name.get(_name(line)) != line]
    added = [line for name, line in after_by_name.items()
             if name not in before_names and name != COURSE]
    return changed, added


def restore(python: Path, venv: Path, pristine: list[str]) -> str:
    """Uninstall what the check added; delete the environment if it is not as built."""
    extra = [_name(line) for line in _freeze(python)
             if _name(line) not in {_name(p) for p in pristine}]
    if extra:
        _run([str(python), "-m", "pip", "uninstall", "--yes", *extra])
    if _freeze(python) != pristine:
        shutil.rmtree(venv, ignore_errors=True)
        return "deleted (it did not return to its built state; the next run rebuilds it)"
    return f"restored (uninstalled {', '.join(extra) or 'nothing'})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venv", type=Path, default=ROOT / "build" / "colab-venv")
    ap.add_argument("--rebuild", action="store_true", help="build the environment afresh")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inside:
        print(RESULT + json.dumps(inside(NOTEBOOKS)))
        return 0

    t0 = time.perf_counter()
    problems = []
    blocks = {path.name: colab_block(_load(path)) for path in NOTEBOOKS}
    if not blocks:
        print("colab-check: FAILED: no notebooks found")
        return 1
    if len(set(blocks.values())) != 1:
        problems.append("the notebooks' Colab blocks differ: " + ", ".join(blocks))
    python, pristine, how = prepare_venv(args.venv.resolve(), args.rebuild)
    print(f"colab-check: environment {args.venv} {how} in {time.perf_counter() - t0:.0f} s "
          f"({len(pristine)} packages; pins from {PINS.relative_to(ROOT)})")

    t1 = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env |= {"PYTHONNOUSERSITE": "1", "MPLBACKEND": "Agg", "SIMCLR_PROFILE": "ci",
            "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        # What a build of this checkout reads, copied: pip builds in the source folder,
        # and its egg-info and build/ must not land in the checkout. The cells run in
        # the temporary folder too, so that `import simclr_lib` finds the installed copy.
        source = Path(tmp) / "simclr-course"
        for name in SOURCE_FILES:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, source / name,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                source.mkdir(exist_ok=True)
                shutil.copy2(ROOT / name, source / name)
        env["SIMCLR_COURSE_SOURCE"] = str(source)
        run = _run([str(python), str(Path(__file__).resolve()), "--inside"], cwd=tmp, env=env)
    lines = [line for line in run.stdout.splitlines() if line.startswith(RESULT)]
    if run.returncode != 0 or not lines:
        problems.append(f"the set-up cells failed (exit {run.returncode}):\n"
                        f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        result = {}
    else:
        result = json.loads(lines[-1].removeprefix(RESULT))
        problems += result["problems"]
    changed, added = compare(pristine, _freeze(python))
    problems += [f"preinstalled package changed: {c}" for c in changed]
    problems += [f"package added besides {COURSE}: {a}" for a in added]
    for name, info in result.get("printed", {}).items():
        print(f"  {name} ({info['seconds']} s): {' | '.join(info['lines'])}")
    print(f"colab-check: set-up cells and explorers ran in {time.perf_counter() - t1:.0f} s "
          f"under ipywidgets {result.get('ipywidgets', '?')}; {len(pristine)} preinstalled "
          f"packages, {len(changed)} changed, {len(added)} added besides {COURSE}")
    print(f"colab-check: environment {restore(python, args.venv.resolve(), pristine)}")
    if problems:
        print("colab-check: FAILED\n  - " + "\n  - ".join(problems))
        return 1
    print(f"colab-check: passed in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
