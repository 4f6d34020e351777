"""`make browser-check`: the notebooks' explorers in a real JupyterLab, in a real browser.

Static checks cannot see what a learner sees, so this (issue 14):

1. copies the notebooks that display an explorer into build/browser-check/work (running
   them there leaves the committed notebooks untouched), and starts JupyterLab on a free
   local port with ``SIMCLR_PROFILE=ci`` and its own settings, runtime and config folders;
2. opens each notebook in headless Chromium (the system's, driven by Playwright's Python
   package; ``playwright install`` cannot download browsers here) in a 1400 x 1000 window,
   and runs all cells;
3. for each explorer: the widgets render (no "Error displaying widget"), the picture is
   shown at its natural size, the explorer fits the window, moving a slider by keyboard
   gives a different picture, and the time from a key press to the new picture is
   reported (median of three presses); screenshots at 1400 and 900 px wide go to
   build/browser-check/;
4. fails on any console error of the page, except the Colab badge image, which cannot
   load offline; and on any error output of a cell.

Everything it starts (JupyterLab, its kernels, the browser) is stopped at the end, also
on failure; each step has a time limit, so a server or browser that does not come up
fails the check with a message instead of hanging it.

Usage:
    python tools/browser_check.py [--chromium /usr/bin/chromium] [--timeout 600]

Exits 0 when every check passes, 1 with the reasons otherwise, 2 when no Chromium exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "browser-check"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
WINDOW = {"width": 1400, "height": 1000}
NARROW = {"width": 900, "height": 1000}
ALLOWED_CONSOLE_ERRORS = ("colab-badge.svg",)  # the Colab badge's image, offline
IMAGE = "img.jupyter-widget-image, img.widget-image"  # ipywidgets 8 and 7 class names
EXPLORER = ".jp-OutputArea-output .widget-vbox"
SLIDER_HANDLE = ".noUi-handle, .ui-slider-handle"  # ipywidgets 8 (noUiSlider), 7 (jQuery)
TRACK = ".noUi-target, .ui-slider"
REDRAWS = 3  # key presses per explorer; the median redraw time is reported


class CheckError(Exception):
    """A check failed; the message says which and why."""


def _alarm(signum, frame):
    raise CheckError("the browser check ran past its time limit (--timeout)")


def has_explorer(path: Path) -> bool:
    """Whether a notebook displays an explorer (a code cell shows ``explorer.widget``)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return any(c["cell_type"] == "code" and ".widget" in "".join(c["source"])
               and "_explorer(" in "".join(c["source"]) for c in nb["cells"])


def find_chromium(given: str | None) -> str | None:
    for candidate in (given, os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------ JupyterLab

class Lab:
    """JupyterLab in its own process group, with its own folders, stopped by ``stop()``."""

    def __init__(self, work: Path, state: Path, startup_timeout: float) -> None:
        self.port, self.token = free_port(), uuid.uuid4().hex
        self.url = f"http://127.0.0.1:{self.port}"
        self.runtime = state / "runtime"  # kernels' connection files: finds our kernels
        settings = state / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = dict(os.environ, SIMCLR_PROFILE="ci", OMP_NUM_THREADS="1",
                   JUPYTER_CONFIG_DIR=str(state / "config"),
                   JUPYTER_RUNTIME_DIR=str(self.runtime),
                   JUPYTERLAB_SETTINGS_DIR=str(state / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(state / "workspaces"))
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.extension_manager=readonly", "--LabApp.news_url=None"]
        if os.getuid() == 0:
            cmd.append("--allow-root")
        self.log_path = state / "jupyterlab.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_until_up(startup_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_until_up(self, startup_timeout: float) -> None:
        deadline = time.monotonic() + startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise CheckError(f"JupyterLab exited at start (code {self.proc.returncode}):"
                                 f"\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise CheckError(f"JupyterLab did not answer on {self.url} within "
                                 f"{startup_timeout:.0f} s:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}",
                                            timeout=2) as r:
                    if r.status == 200:
                        return
            time.sleep(0.5)

    def log_tail(self, n: int = 20) -> str:
        if not self.log.closed:
            self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> list[int]:
        """Shut the server down (it stops its kernels), then end whatever is left.

        Returns:
            Ids of processes that had to be killed after the polite shutdown.
        """
        asked = False
        with contextlib.suppress(OSError):
            req = urllib.request.Request(f"{self.url}/api/shutdown?token={self.token}",
                                         method="POST")
            urllib.request.urlopen(req, timeout=5).close()
            asked = True
        killed = []
        try:
            self.proc.wait(timeout=15 if asked else 1)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            killed.append(self.proc.pid)
        for pid in self._our_kernels():  # kernels run in sessions of their own
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        if not self.log.closed:
            self.log.close()
        return killed

    def _our_kernels(self) -> list[int]:
        """Processes whose command line names our runtime folder: our kernels."""
        pids = []
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if str(self.runtime).encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
        return pids


# ------------------------------------------------------------------------ the browser

RUN_STATE = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext.session) return null;
  const kernel = panel.sessionContext.session.kernel;
  const cells = panel.content.model.cells;
  let pending = 0, errors = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    if (cell.executionCount === null) pending++;
    for (const o of cell.outputs.toJSON())
      if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
  }
  return {kernel: kernel ? kernel.status : 'none', pending, errors};
}"""

WATCH_REDRAW = """([img, slider]) => {
  window.__redraw = {t0: null, t1: null, src: img.src};
  slider.addEventListener('keydown', () => {
    if (window.__redraw.t0 === null) window.__redraw.t0 = performance.now();
  }, {capture: true, once: true});
  const seen = new MutationObserver(() => {
    if (img.src === window.__redraw.src) return;
    seen.disconnect();
    img.decode().finally(() => { window.__redraw.t1 = performance.now(); });
  });
  seen.observe(img, {attributes: true, attributeFilter: ['src']});
}"""


def run_notebook(page, lab: Lab, name: str, timeout_s: float) -> None:
    page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}",  # reset: no other tabs
              wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           ".kernel && window.jupyterapp.shell.currentWidget.sessionContext"
                           ".session.kernel.status === 'idle'", timeout=90_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.monotonic() + timeout_s
    state = None
    while time.monotonic() < deadline:
        state = page.evaluate(RUN_STATE)
        if state and state["errors"]:
            raise CheckError(f"{name}: a cell failed: {'; '.join(state['errors'])}")
        if state and state["pending"] == 0 and state["kernel"] == "idle":
            return
        page.wait_for_timeout(500)
    raise CheckError(f"{name}: cells still running after {timeout_s:.0f} s ({state})")


def check_explorer(page, name: str, index: int, explorer) -> dict:
    """Render, size, fit, keyboard slider and redraw time of one explorer."""
    tag = f"{Path(name).stem}-explorer{index + 1}"
    explorer.scroll_into_view_if_needed(timeout=10_000)
    img = explorer.locator(IMAGE).first
    img.wait_for(state="visible", timeout=20_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle(),
                           timeout=20_000)
    size = img.evaluate("img => ({natural: [img.naturalWidth, img.naturalHeight],"
                        " shown: [img.getBoundingClientRect().width,"
                        " img.getBoundingClientRect().height]})")
    box = explorer.bounding_box()
    # the notebook's scrolling area: the window less JupyterLab's menus, toolbar, status bar
    view = explorer.evaluate("el => { const s = el.closest('.jp-WindowedPanel-outer')"
                             " || el.closest('.jp-Notebook'); return [s.clientWidth,"
                             " s.clientHeight]; }")
    tracks = explorer.locator(TRACK).evaluate_all(
        "els => els.map(e => Math.round(e.getBoundingClientRect().width))")
    problems = []
    if abs(size["shown"][0] - size["natural"][0]) > 1:
        problems.append(f"picture shown {size['shown'][0]:.0f} px wide, its natural width "
                        f"is {size['natural'][0]} px")
    if box["width"] > view[0] or box["height"] > view[1]:
        problems.append(f"explorer is {box['width']:.0f}x{box['height']:.0f} px, larger than "
                        f"the notebook's {view[0]}x{view[1]} px in a {WINDOW['width']}x"
                        f"{WINDOW['height']} window")
    if not tracks or max(tracks) - min(tracks) > 1:
        problems.append(f"slider tracks of unequal widths: {tracks} px")
    handles = explorer.locator(SLIDER_HANDLE)
    if handles.count() == 0:
        raise CheckError(f"{tag}: no slider handle found")
    slider = handles.last  # seed (01) or anchor (03): both always change the picture
    before = img.screenshot()
    slider.focus()
    redraws = []
    for step in range(REDRAWS):
        page.evaluate(WATCH_REDRAW, [img.element_handle(), slider.element_handle()])
        slider.press("ArrowRight")
        try:
            page.wait_for_function("() => window.__redraw.t1 !== null", timeout=15_000)
        except Exception as e:  # Playwright's TimeoutError
            raise CheckError(f"{tag}: no new picture within 15 s of moving the slider "
                             f"(key press {step + 1})") from e
        redraws.append(page.evaluate("() => window.__redraw.t1 - window.__redraw.t0") / 1000)
        if step == 0 and img.screenshot() == before:
            problems.append("moving the slider by keyboard left the picture as it was")
    redraw = sorted(redraws)[len(redraws) // 2]
    page.evaluate("el => el.scrollIntoView({block: 'start'})", explorer.element_handle())
    page.wait_for_timeout(300)
    page.screenshot(path=str(OUT / f"{tag}.png"))
    return {"explorer": tag, "natural_px": size["natural"],
            "shown_px": [round(v) for v in size["shown"]],
            "explorer_px": [round(box["width"]), round(box["height"])], "notebook_px": view,
            "track_px": tracks,
            "redraw_s": round(redraw, 3), "redraws_s": [round(r, 3) for r in redraws],
            "problems": problems,
            "screenshot": str((OUT / f"{tag}.png").relative_to(ROOT))}


def narrow_screenshots(page, name: str, count: int) -> list[int]:
    """The same explorers in a 900-px-wide window (to look at: are they readable?).

    Returns:
        The width each picture is shown at there.
    """
    page.set_viewport_size(NARROW)
    page.wait_for_timeout(500)
    explorers = page.locator(EXPLORER).filter(has=page.locator(IMAGE))
    widths = []
    for i in range(count):
        page.evaluate("el => el.scrollIntoView({block: 'start'})",
                      explorers.nth(i).element_handle())
        page.wait_for_timeout(300)
        page.screenshot(path=str(OUT / f"{Path(name).stem}-explorer{i + 1}-900px.png"))
        widths.append(round(explorers.nth(i).locator(IMAGE).first.evaluate(
            "img => img.getBoundingClientRect().width")))
    page.set_viewport_size(WINDOW)
    return widths


def check(chromium: str, notebooks: list[Path]) -> tuple[list[dict], list[str]]:
    from playwright.sync_api import sync_playwright

    state = OUT / "state"
    work = OUT / "work"
    shutil.rmtree(OUT, ignore_errors=True)
    work.mkdir(parents=True)
    state.mkdir()
    for path in notebooks:
        shutil.copy2(path, work / path.name)

    results, problems, console = [], [], []
    t0 = time.perf_counter()
    lab = Lab(work, state, startup_timeout=90)
    print(f"browser-check: JupyterLab up on {lab.url} in {time.perf_counter() - t0:.0f} s")
    try:
        with sync_playwright() as pw:
            try:
                context = pw.chromium.launch_persistent_context(
                    str(state / "chromium-profile"), executable_path=chromium, headless=True,
                    args=CHROMIUM_FLAGS, viewport=WINDOW, timeout=60_000)
            except Exception as e:
                raise CheckError(f"Chromium ({chromium}) did not start within 60 s: "
                                 f"{str(e).splitlines()[0]}") from e
            try:
                page = context.new_page()
                page.set_default_timeout(30_000)

                def on_console(msg):
                    if msg.type == "error":
                        where = msg.location.get("url", "") if msg.location else ""
                        console.append(f"{msg.text} ({where})")

                page.on("console", on_console)
                page.on("pageerror", lambda e: console.append(f"uncaught: {e}"))
                for path in notebooks:
                    t1 = time.perf_counter()
                    run_notebook(page, lab, path.name, timeout_s=300)
                    print(f"browser-check: {path.name}: all cells ran in "
                          f"{time.perf_counter() - t1:.0f} s")
                    if page.get_by_text("Error displaying widget").count():
                        problems.append(f"{path.name}: 'Error displaying widget' on the page")
                    explorers = page.locator(EXPLORER).filter(has=page.locator(IMAGE))
                    count = explorers.count()
                    if count == 0:
                        problems.append(f"{path.name}: no explorer rendered")
                    found = [check_explorer(page, path.name, i, explorers.nth(i))
                             for i in range(count)]
                    for result, width in zip(found, narrow_screenshots(page, path.name, count),
                                             strict=True):
                        result["shown_px_at_900"] = width
                        results.append(result)
                        problems += [f"{result['explorer']}: {p}" for p in result["problems"]]
                    page.evaluate("() => window.jupyterapp.shell.currentWidget"
                                  ".sessionContext.shutdown()")  # its kernel: memory
            finally:
                context.close()
    finally:
        killed = lab.stop()
        if killed:
            print(f"browser-check: had to kill processes {killed} after shutdown")
    unexpected = [c for c in console if not any(a in c for a in ALLOWED_CONSOLE_ERRORS)]
    problems += [f"console error: {c}" for c in unexpected]
    ignored = len(console) - len(unexpected)
    if ignored:
        print(f"browser-check: ignored {ignored} console error(s) of the offline Colab badge")
    return results, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chromium", help="Chromium executable (default: chromium on PATH)")
    ap.add_argument("--timeout", type=int, default=600, help="limit for the whole check, s")
    args = ap.parse_args(argv)
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("browser-check: no Chromium found (tried --chromium, $CHROMIUM, chromium, "
              "chromium-browser); install it, e.g. `apt-get install chromium`")
        return 2
    notebooks = [p for p in NOTEBOOKS if has_explorer(p)]
    t0 = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(args.timeout)
    try:
        results, problems = check(chromium, notebooks)
    except CheckError as e:
        results, problems = [], [str(e)]
    except Exception as e:  # Playwright's errors: a browser that does not start, a timeout
        results, problems = [], [f"{type(e).__name__}: {e}"]
    finally:
        signal.alarm(0)
    for r in results:
        print(f"  {r['explorer']}: redraw {r['redraw_s']:.3f} s from key press to picture "
              f"(median of {r['redraws_s']}); "
              f"picture {r['natural_px'][0]}x{r['natural_px'][1]} px, shown "
              f"{r['shown_px'][0]} px wide ({r['shown_px_at_900']} in a 900-px window); "
              f"explorer {r['explorer_px'][0]}x{r['explorer_px'][1]} px in a notebook area of "
              f"{r['notebook_px'][0]}x{r['notebook_px'][1]}; slider tracks {r['track_px']} px;"
              f" {r['screenshot']}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report.json").write_text(json.dumps({"results": results, "problems": problems},
                                                indent=1))
    took = time.perf_counter() - t0
    if problems:
        print(f"browser-check: FAILED after {took:.0f} s\n  - " + "\n  - ".join(problems))
        return 1
    print(f"browser-check: passed in {took:.0f} s ({len(results)} explorers in "
          f"{len(notebooks)} notebooks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
