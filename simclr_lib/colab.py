"""Finish installing the course on Colab without changing any package Colab installed.

Colab's runtime is built on pinned packages (ipykernel, ipython, tornado, pyzmq, notebook,
ipywidgets 7, ...). Upgrading one of them makes Colab ask for a restart and can break the
runtime, and a plain ``pip install`` of a project upgrades whatever its requirements allow.
So the set-up cell of every notebook installs the course in two steps, on Colab only::

    pip install --no-deps git+https://github.com/simclr-course/simclr-course
    from simclr_lib.colab import install_missing
    print(install_missing(source))

The first adds the course itself and touches nothing else. :func:`install_missing` then
installs only the requirements that are *missing*, with every installed distribution
pinned to its current version (a pip constraints file), so pip may add packages but never
change one; a requirement installed in a version outside the course's range is kept and
reported. With ipywidgets 8 it turns on Colab's custom widget manager, without which
ipywidgets 8 sliders do not show on Colab; ipywidgets 7, which Colab ships, needs nothing.

This module imports only the standard library: it runs before the requirements exist.
``make colab-check`` runs the set-up cell in a Colab-like environment (tools/colab_check.py).
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import re
import subprocess
import sys
import tempfile
from pathlib import Path

DISTRIBUTION = "simclr-course"
PREFIX = "Colab set-up:"  # the one line install_missing returns starts with this
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*"
                          r"(?:;\s*(.*))?$")


def normalize(name: str) -> str:
    """A distribution name in PEP 503 form (``Scikit_Learn`` -> ``scikit-learn``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> dict[str, str]:
    """Version of every installed distribution by normalized name, as ``import`` sees them.

    Where a name is installed twice on ``sys.path``, the first one wins, as for imports.
    """
    versions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and normalize(name) not in versions:
            versions[normalize(name)] = dist.version
    return versions


def runtime_requirements(distribution: str = DISTRIBUTION) -> list[str]:
    """The requirements of an installed distribution, without those of its extras.

    Args:
        distribution: the installed distribution's name.

    Returns:
        Requirement strings such as ``"torch>=2.3"``, in the order of its metadata.
    """
    reqs = metadata.requires(distribution) or []
    return [r for r in reqs if _applies(_REQUIREMENT.match(r).group(3))]


def _applies(marker: str | None) -> bool:
    """Whether a requirement's environment marker holds here; extras' never do."""
    if not marker:
        return True
    if "extra" in marker:
        return False
    try:
        from packaging.markers import Marker
    except ImportError:
        return True  # install rather than skip: pip evaluates the marker again
    return Marker(marker).evaluate()


def _satisfied(version: str, specifier: str) -> bool | None:
    """Whether ``version`` is in ``specifier``; ``None`` when ``packaging`` is missing."""
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:
        return None
    return SpecifierSet(specifier).contains(version, prereleases=True)


def plan(requirements: list[str], installed: dict[str, str],
         ) -> tuple[list[str], list[str]]:
    """Split requirements into those to install and those installed outside their range.

    Args:
        requirements: requirement strings, e.g. ``["torch>=2.3", "tqdm>=4.64"]``.
        installed: normalized name -> installed version (:func:`installed_versions`).

    Returns:
        ``(missing, outside)``: the requirement strings whose distribution is not
        installed, and notes such as ``"matplotlib 3.5.0 (wanted >=3.7)"`` for those
        installed in a version the course does not ask for (kept as they are).

    Example:
        >>> plan(["torch>=2.3", "tqdm>=4.64"], {"torch": "2.5.1"})
        (['tqdm>=4.64'], [])
    """
    missing, outside = [], []
    for req in requirements:
        name, specifier, _ = _REQUIREMENT.match(req).groups()
        version = installed.get(normalize(name))
        if version is None:
            missing.append(req)
        elif specifier and _satisfied(version, specifier) is False:
            outside.append(f"{name} {version} (wanted {specifier})")
    return missing, outside


def _pip_install_pinned(requirements: list[str], installed: dict[str, str]) -> None:
    """``pip install`` the requirements with every installed distribution held as it is."""
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "installed.txt"
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(installed.items())))
        result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                                 "--constraint", str(constraints), *requirements],
                                capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.splitlines()
        errors = [line for line in lines if line.startswith("ERROR")] or lines[-10:]
        raise RuntimeError(
            f"could not install {', '.join(requirements)} without changing a package this "
            "runtime already has (pip's message below). Install them yourself with "
            f"`pip install {' '.join(requirements)}`, then restart the runtime if pip asks.\n"
            + "\n".join(errors)[-2000:])
    importlib.invalidate_caches()


def install_missing(source: str) -> str:
    """Install the course's missing requirements and prepare widgets; say what was done.

    Call it right after ``pip install --no-deps <source>`` installed the course; on Colab
    only (the set-up cell of every notebook does both).

    Args:
        source: where the course came from (for the message), e.g. ``git+https://...``.

    Returns:
        One line starting with :data:`PREFIX`: what was installed, what was kept, and the
        widgets in use.

    Raises:
        RuntimeError: if a missing requirement cannot be installed without changing an
            installed package.
    """
    installed = installed_versions()
    missing, outside = plan(runtime_requirements(), installed)
    if missing:
        _pip_install_pinned(missing, installed)
        installed = installed_versions()
    widgets = installed.get("ipywidgets", "")
    if widgets and int(widgets.split(".")[0]) >= 8:
        from google.colab import output  # ipywidgets 8 sliders need this to show on Colab

        output.enable_custom_widget_manager()
        widgets = f"ipywidgets {widgets} (custom widget manager on)"
    else:
        widgets = f"ipywidgets {widgets}" if widgets else "no ipywidgets"
    added = f" and the missing {', '.join(missing)}" if missing else ""
    kept = f"; kept {', '.join(outside)}" if outside else ""
    return (f"{PREFIX} installed {DISTRIBUTION} {installed.get(DISTRIBUTION, '?')} from "
            f"{source}{added}, changing no installed package{kept}; {widgets}.")
