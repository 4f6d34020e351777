"""Installing on Colab adds what is missing and changes nothing; the library needs no Jupyter.

The notebooks' Colab block is executed here exactly as it stands in notebook 01, with a
stand-in ``google.colab`` and a recording ``subprocess.run`` (no pip runs); `make
colab-check` runs the same cells for real in a Colab-like environment.
"""

import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from simclr_lib import colab

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("colab_check", ROOT / "tools" / "colab_check.py")
colab_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(colab_check)
NOTEBOOK = ROOT / "notebooks" / "01_augmentations.ipynb"
REPO_URL = "https://github.com/simclr-course/simclr-course"  # pyproject's, checked elsewhere


# ------------------------------------------------------------------ plan and requirements

def test_plan_lists_missing_requirements_and_keeps_out_of_range_ones():
    installed = {"torch": "2.5.1+cu124", "matplotlib": "3.5.0", "scikit-learn": "1.6.1"}
    reqs = ["torch>=2.3", "matplotlib>=3.7", "Scikit_Learn>=1.3", "tqdm>=4.64"]
    missing, outside = colab.plan(reqs, installed)
    assert missing == ["tqdm>=4.64"]
    assert outside == ["matplotlib 3.5.0 (wanted >=3.7)"]


def test_runtime_requirements_are_pyproject_dependencies_without_extras():
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = colab.runtime_requirements()
    assert sorted(r.replace(" ", "") for r in reqs) == sorted(
        pyproject["project"]["dependencies"]), (
        "the installed metadata does not match pyproject.toml: run `make install` again")
    assert not any("jupyterlab" in r or "pytest" in r for r in reqs)


def test_installed_versions_uses_normalized_names():
    versions = colab.installed_versions()
    assert versions["scikit-learn"] and versions["simclr-course"]
    assert all(name == colab.normalize(name) for name in versions)


# ------------------------------------------------------- the notebooks' Colab block itself

@pytest.fixture
def fake_colab(monkeypatch):
    """A stand-in google.colab whose widget-manager switch records its calls."""
    calls = []
    output = types.ModuleType("google.colab.output")
    output.enable_custom_widget_manager = lambda: calls.append("enable")
    google_colab = types.ModuleType("google.colab")
    google_colab.output = output
    google = sys.modules.get("google") or types.ModuleType("google")
    monkeypatch.setattr(google, "colab", google_colab, raising=False)
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google_colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    return calls


@pytest.fixture
def pip_calls(monkeypatch):
    """Record subprocess.run calls instead of running pip; keep any constraints file text."""
    calls = []

    def run(cmd, *args, **kwargs):
        constraints = None
        if "--constraint" in cmd:
            constraints = Path(cmd[cmd.index("--constraint") + 1]).read_text()
        calls.append({"cmd": list(cmd), "constraints": constraints})
        return subprocess.CompletedProcess(cmd, 0, stdout="", stderr="")

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def _run_colab_block(monkeypatch, capsys, source=None):
    if source is None:
        monkeypatch.delenv("SIMCLR_COURSE_SOURCE", raising=False)
    else:
        monkeypatch.setenv("SIMCLR_COURSE_SOURCE", source)
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    exec(compile(colab_check.up_to_colab_block(nb), "set-up cell", "exec"), {})
    return capsys.readouterr().out.splitlines()


def test_colab_block_installs_the_course_without_dependencies(
        monkeypatch, capsys, fake_colab, pip_calls):
    lines = _run_colab_block(monkeypatch, capsys)
    first = pip_calls[0]["cmd"]
    assert first[1:4] == ["-m", "pip", "install"] and "--no-deps" in first
    assert first[-1] == f"git+{REPO_URL}"
    assert len(pip_calls) == 1  # everything the course needs is installed here
    assert len(lines) == 1 and lines[0].startswith(colab.PREFIX)
    assert "simclr-course" in lines[0] and "changing no installed package" in lines[0]


def test_colab_block_installs_from_simclr_course_source(
        monkeypatch, capsys, fake_colab, pip_calls):
    _run_colab_block(monkeypatch, capsys, source="git+https://example.org/fork@branch")
    assert pip_calls[0]["cmd"][-1] == "git+https://example.org/fork@branch"


def test_missing_requirements_are_installed_with_everything_else_pinned(
        monkeypatch, capsys, fake_colab, pip_calls):
    real = colab.installed_versions()
    without_tqdm = {k: v for k, v in real.items() if k != "tqdm"}
    monkeypatch.setattr(colab, "installed_versions", lambda: without_tqdm)
    lines = _run_colab_block(monkeypatch, capsys)
    assert len(pip_calls) == 2
    second = pip_calls[1]
    assert [a for a in second["cmd"] if a.startswith("tqdm")] == ["tqdm>=4.64"]
    assert not any(a.startswith(("torch", "ipywidgets")) for a in second["cmd"][5:])
    pinned = set(second["constraints"].splitlines())
    assert f"torch=={real['torch']}" in pinned and f"ipykernel=={real['ipykernel']}" in pinned
    assert len(pinned) == len(without_tqdm)
    assert "the missing tqdm>=4.64" in lines[0]


def test_widget_manager_is_turned_on_only_for_ipywidgets_8(
        monkeypatch, capsys, fake_colab, pip_calls):
    versions = colab.installed_versions()
    for widgets, expected in (("8.1.5", ["enable"]), ("7.7.1", [])):
        fake_colab.clear()
        monkeypatch.setattr(colab, "installed_versions",
                            lambda w=widgets: versions | {"ipywidgets": w})
        lines = _run_colab_block(monkeypatch, capsys)
        assert fake_colab == expected, widgets
        assert f"ipywidgets {widgets}" in lines[0]


def test_a_failing_pip_says_what_to_do(monkeypatch):
    def run(cmd, *args, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ResolutionImpossible")

    monkeypatch.setattr(subprocess, "run", run)
    with pytest.raises(RuntimeError, match="(?s)without changing a package.*ResolutionImpossible"):
        colab._pip_install_pinned(["tqdm>=4.64"], {"torch": "2.5.1"})


# ------------------------------------------------------ the library without Jupyter parts

def _import_with_blocked(blocked: list[str], modules: list[str]) -> subprocess.CompletedProcess:
    """Import ``modules`` in a fresh Python where importing any of ``blocked`` fails."""
    code = (f"import sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n"
            f"import importlib\nfailed = []\nfor m in {modules!r}:\n"
            "    try:\n        importlib.import_module(m)\n"
            "    except ImportError as e:\n        failed.append(f'{m}: {e}')\n"
            "print(failed)\nsys.exit(1 if failed else 0)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)


def _library_modules() -> list[str]:
    names = [p.stem for p in (ROOT / "simclr_lib").glob("*.py")]
    return [f"simclr_lib.{n}" for n in sorted(names) if n not in ("__init__", "__main__")]


def test_every_module_but_widgets_imports_without_ipywidgets():
    others = [m for m in _library_modules() if m != "simclr_lib.widgets"]
    assert "simclr_lib.colab" in others and len(others) >= 15
    run = _import_with_blocked(["ipywidgets"], others)
    assert run.returncode == 0, run.stdout + run.stderr
    # and the block works: widgets itself cannot be imported
    run = _import_with_blocked(["ipywidgets"], ["simclr_lib.widgets"])
    assert run.returncode == 1 and "ipywidgets" in run.stdout


def test_colab_module_needs_only_the_standard_library():
    blocked = ["torch", "torchvision", "numpy", "matplotlib", "sklearn", "tqdm", "ipywidgets",
               "packaging", "PIL"]
    code_check = ("from simclr_lib import colab\n"
                  "assert colab.plan(['torch>=2.3', 'tqdm'], {'torch': '1.0'}) == "
                  "(['tqdm'], [])\n")  # without packaging, versions are not compared
    run = _import_with_blocked(blocked, ["simclr_lib.colab"])
    assert run.returncode == 0, run.stdout + run.stderr
    run = subprocess.run([sys.executable, "-c", "import sys\n" + "".join(
        f"sys.modules[{b!r}] = None\n" for b in blocked) + code_check],
        capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
