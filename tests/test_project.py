"""The project's packaging stays consistent: environment.yml, pyproject.toml, README, CI."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirement_names(reqs):
    return {re.split(r"[<>=!~\[ ;]", r.strip(), maxsplit=1)[0].lower() for r in reqs}


def _environment_pip_section():
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    entries = []
    for line in lines[start + 1:]:
        m = re.match(r"\s+- ([^#]+)", line)
        if not m or not line.startswith("      "):
            break
        entries.append(m.group(1).strip())
    return entries


EXTRAS = PYPROJECT["project"]["optional-dependencies"]


def test_environment_yml_lists_exactly_the_pyproject_dependencies():
    # environment.yml installs what `make install` does: the library, lab and dev extras.
    deps = PYPROJECT["project"]["dependencies"] + EXTRAS["lab"] + EXTRAS["dev"]
    pip = _environment_pip_section()
    assert "-e .[dev,lab]" in pip, "environment.yml must install the project with dev, lab"
    listed = [e for e in pip if not e.startswith("-e")]
    assert sorted(listed) == sorted(deps), (
        "environment.yml's pip list and pyproject.toml disagree; update both together")
    assert _requirement_names(listed) == _requirement_names(deps)


def test_make_install_installs_the_dev_and_lab_extras():
    makefile = (ROOT / "Makefile").read_text()
    assert '-e ".[dev,lab]"' in makefile


def test_environment_yml_pins_python_311():
    assert re.search(r"^\s+- python=3\.11\s*$", (ROOT / "environment.yml").read_text(), re.M)


def test_dependencies_are_the_few_we_chose():
    # Runtime: only what simclr_lib imports, so that installing it on Colab adds nothing.
    runtime = _requirement_names(PYPROJECT["project"]["dependencies"])
    assert runtime == {"torch", "torchvision", "matplotlib", "scikit-learn", "ipywidgets",
                       "tqdm"}
    assert _requirement_names(EXTRAS["lab"]) == {"jupyterlab", "ipywidgets"}
    assert _requirement_names(EXTRAS["dev"]) == {"pytest", "nbmake", "ruff"}
    assert _requirement_names(EXTRAS["browser"]) == {"playwright"}
    # Ranges, never exact pins (the local pip configuration resolves them).
    assert not any("==" in r for r in PYPROJECT["project"]["dependencies"])


def test_ipywidgets_range_includes_the_7x_line_colab_ships():
    spec = next(r for r in PYPROJECT["project"]["dependencies"] if r.startswith("ipywidgets"))
    assert spec == "ipywidgets>=7.6"


def test_readme_starts_with_the_two_commands_and_names_the_repository():
    readme = (ROOT / "README.md").read_text()
    head = readme[:1500]
    assert "make course" in head and "make test" in head
    assert PYPROJECT["project"]["urls"]["Repository"] in readme


def test_ci_runs_the_readme_test_command_and_the_two_checks():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "set -euo pipefail" in ci
    assert "CI=true" in ci
    assert "make colab-check" in ci and "make browser-check" in ci


def test_readme_python_example_runs(capsys):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    assert "NT-Xent of an untrained model" in capsys.readouterr().out


def test_readme_own_images_example_runs(tmp_path, monkeypatch, capsys):
    """The second Python block (load an encoder, embed a folder, find neighbours) runs as
    written, in a directory holding what the README's commands create: my_images/, runs/mine/."""
    import numpy as np
    import torch
    from PIL import Image

    from simclr_lib.config import get_profile
    from simclr_lib.train import fit

    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / "my_images" / "train" / c).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (30, 40, 3), np.uint8)
            Image.fromarray(pixels).save(tmp_path / "my_images" / "train" / c / f"{i}.jpg")
    (tmp_path / "my_images" / "train" / "cat" / "broken.jpg").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    cfg = get_profile("ci").train
    cfg.dataset, cfg.data_dir, cfg.image_size, cfg.batch_size = "folder", "my_images", 24, 4
    cfg.out, cfg.epochs, cfg.max_steps, cfg.knn_every = "runs/mine", 1, 1, 0
    fit(cfg)
    capsys.readouterr()

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    code = next(b for b in blocks if "embed_folder" in b)
    ns = {}
    exec(compile(code, "README.md", "exec"), ns)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(line.split("  ")[1].startswith("train/") for line in lines)
    emb = ns["emb"]
    assert len(emb) == 12 and "train/cat/broken.jpg" in emb.skipped
    torch.testing.assert_close(ns["h"][0].detach(), emb.h[0], rtol=1e-4, atol=1e-5)
    assert (tmp_path / "embeddings.npz").exists() and (tmp_path / "neighbours.png").exists()
