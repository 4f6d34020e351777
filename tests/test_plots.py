"""Every plot function returns a Figure with the expected axes, and never touches pyplot."""

import json
import math
import os

os.environ.setdefault("MPLBACKEND", "Agg")  # headless, before matplotlib picks a backend

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from simclr_lib import plots  # noqa: E402
from simclr_lib.plots import (  # noqa: E402
    plot_ablation,
    plot_accuracies,
    plot_histograms,
    plot_history,
    plot_knn_grid,
    plot_label_efficiency,
    plot_simclr_overview,
    plot_similarity,
    plot_tsne,
    plot_tsne_factors,
    show_views,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # conftest.py runs torch on one thread; t-SNE's OpenMP pool needs the same limit.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before  # nothing registered with pyplot, nothing to leak


def images(n=8, dtype=torch.uint8, size=8):
    x = torch.randint(0, 256, (n, 3, size, size))
    return x.to(torch.uint8) if dtype == torch.uint8 else x.float() / 255


def check(fig, n_axes, tmp_path):
    assert isinstance(fig, Figure)
    assert len(fig.axes) == n_axes
    fig.savefig(tmp_path / "fig.png", dpi=40)  # renders without error
    assert (tmp_path / "fig.png").stat().st_size > 0


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_show_views(dtype, tmp_path):
    x = images(10, dtype)
    check(show_views(x, n=5), 5, tmp_path)
    check(show_views(x, n=12), 10, tmp_path)  # n is capped at B; wraps after 8, no empty axes
    check(show_views(x, x, n=4), 8, tmp_path)
    fig = show_views(x, x.flip(-1), x, n=6, titles=[f"c{i}" for i in range(6)])
    check(fig, 18, tmp_path)
    assert fig.axes[0].get_title() == "c0"
    with pytest.raises(ValueError, match="fewer than n"):
        show_views(x, x[:2], n=4)
    with pytest.raises(ValueError, match="images must be"):
        show_views(torch.rand(4, 5, 8, 8))


def _stage_colours(fig):
    """Edge colour of every stage-tagged box, arrow or vector, by stage."""
    colours = {}
    for artist in fig.axes[0].findobj():
        gid = artist.get_gid() or ""
        if gid.startswith("stage:"):
            if hasattr(artist, "arrow_patch") and artist.arrow_patch is not None:
                artist = artist.arrow_patch
            elif hasattr(artist, "get_bbox_patch") and artist.get_bbox_patch() is not None:
                artist = artist.get_bbox_patch()
            colours.setdefault(gid.removeprefix("stage:"), set()).add(
                matplotlib.colors.to_hex(artist.get_edgecolor()))
    return colours


def test_plot_simclr_overview_draws_the_papers_figure_2(tmp_path):
    fig = plot_simclr_overview()
    check(fig, 1, tmp_path)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for part in (r"$f(\cdot)$", r"$g(\cdot)$", "$h_i$", "$h_j$", "$z_i$", "$z_j$",
                 r"$\tilde{x}_i$", r"$\tilde{x}_j$", r"$t \sim \mathcal{T}$",
                 "maximise agreement", "thrown away", "01 augmentations", "03 NT-Xent"):
        assert part in texts, part
    colours = _stage_colours(fig)
    assert set(colours) == set(plots.OVERVIEW_STAGES)
    assert all(len(c) == 1 and "#aaaaaa" not in c for c in colours.values())  # all in colour
    assert len({c.pop() for c in colours.values()}) == 4  # one colour per stage


def test_plot_simclr_overview_highlights_stages_and_shows_images(tmp_path):
    colours = _stage_colours(plot_simclr_overview(highlight=("encoder", "head")))
    assert colours["augment"] == colours["loss"] == {"#aaaaaa"}  # greyed out
    assert "#aaaaaa" not in colours["encoder"] | colours["head"]
    x = images(3, size=16)
    fig = plot_simclr_overview(images=(x[0], x[1].float() / 255, x[2]), highlight="augment")
    check(fig, 1, tmp_path)
    shown = fig.axes[0].get_images()
    assert len(shown) == 3
    np.testing.assert_allclose(shown[0].get_array(), x[0].permute(1, 2, 0).numpy() / 255,
                               atol=1e-6)
    assert r"$\tilde{x}_i$" not in [t.get_text() for t in fig.axes[0].texts]  # pictures
    with pytest.raises(ValueError, match="unknown stage"):
        plot_simclr_overview(highlight="decoder")
    with pytest.raises(ValueError, match=r"\(x, x_i, x_j\)"):
        plot_simclr_overview(images=(x[0], x[1]))


def test_plot_histograms(tmp_path):
    check(plot_histograms(images(6), bins=16), 8, tmp_path)  # n=4 images: 4 + 4 histograms
    check(plot_histograms(images(2, torch.float32), n=4), 4, tmp_path)


def test_plot_histograms_fits_the_tallest_bin_on_a_0_to_1_axis(tmp_path):
    x = torch.zeros(3, 3, 8, 8, dtype=torch.uint8)  # image 0: black, every bin-0 count is 1
    x[1] = 255                                      # image 1: white, all in the last bin
    x[2] = torch.randint(0, 256, (3, 8, 8), generator=torch.Generator().manual_seed(0))
    fig = plot_histograms(x, bins=8, n=3)
    check(fig, 6, tmp_path)
    hists = fig.axes[3:]
    for ax in hists:
        assert ax.get_xlim() == (0, 1)  # the course's float range, not uint8's 0..255
        low, high = ax.get_ylim()
        assert low == 0 and 1.0 < high < 1.2  # the spikes of height 1 are not cut off
    white_r = hists[1].patches[0]  # the R channel's stairs of the white image
    np.testing.assert_allclose(white_r.get_data().values, [0] * 7 + [1])  # 1.0 in last bin
    for ax in hists[:2]:
        assert ax.get_ylim() == hists[2].get_ylim()  # one y range for every histogram


def test_plot_similarity_marks_positives_and_masks_the_diagonal(tmp_path):
    n = 4
    sim = torch.randn(2 * n, 2 * n)
    sim.fill_diagonal_(float("-inf"))  # as in similarity_logits
    fig = plot_similarity(sim, n)
    check(fig, 2, tmp_path)  # heatmap + colour bar
    ax = fig.axes[0]
    outlined = sorted((int(p.get_x() + 0.5), int(p.get_y() + 0.5)) for p in ax.patches)
    assert outlined == sorted(((k + n) % (2 * n), k) for k in range(2 * n))
    shown = ax.images[0].get_array()
    assert np.ma.getmaskarray(shown).diagonal().all() and np.ma.getmaskarray(shown).sum() == 8
    assert len(plot_similarity(sim.numpy(), n, mark_positives=False).axes[0].patches) == 0
    with pytest.raises(ValueError, match="n_pairs"):
        plot_similarity(sim, 3)


def test_plot_tsne(tmp_path):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    h = 5 * torch.eye(3, 8)[y] + torch.randn(60, 8, generator=g)
    check(plot_tsne(h, y, max_points=30, perplexity=5), 1, tmp_path)
    fig = plot_tsne(h, y, z=h[:, :4], classes=["a", "b", "c"], max_points=30, perplexity=5)
    check(fig, 2, tmp_path)
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 30  # subsampled
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b", "c"]


def test_plot_tsne_factors_draws_one_embedding_coloured_per_factor(tmp_path):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    bg = (torch.arange(60) // 3) % 2
    h = 5 * torch.eye(3, 8)[y] + torch.randn(60, 8, generator=g)
    fig = plot_tsne_factors(h, {"class": (y, ["a", "b", "c"]),
                                "background": (bg, ["solid", "gradient"])},
                            max_points=40, perplexity=5)
    check(fig, 2, tmp_path)
    points = [np.concatenate([c.get_offsets() for c in ax.collections]) for ax in fig.axes]
    assert len(points[0]) == len(plots._stratified(y.numpy(), 40, seed=0)) == 39
    # the same 2-D points in both panels, grouped differently
    key = lambda p: sorted(map(tuple, np.round(p, 6)))  # noqa: E731
    assert key(points[0]) == key(points[1])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b", "c"]
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["solid",
                                                                            "gradient"]
    assert fig._suptitle.get_text().endswith("coloured two ways")
    with pytest.raises(ValueError, match="factor 'bad'"):
        plot_tsne_factors(h, {"bad": (y[:10], None)})
    with pytest.raises(ValueError, match="at least one"):
        plot_tsne_factors(h, {})


def test_plot_accuracies(tmp_path):
    table = {"SimCLR": {"kNN": 0.45, "linear": 0.7}, "raw pixels": {"kNN": 0.15, "linear": 0.11},
             "supervised": {"kNN": None, "linear": 0.9}}
    fig = plot_accuracies(table, chance=0.1)
    check(fig, 1, tmp_path)
    ax = fig.axes[0]
    widths = sorted(round(p.get_width(), 6) for p in ax.patches)
    assert widths == [11.0, 15.0, 45.0, 70.0, 90.0]  # no bar for the missing kNN
    assert [t.get_text() for t in ax.get_yticklabels()] == list(table)
    assert {"kNN", "linear", "chance"} <= {t.get_text() for t in fig.legends[0].get_texts()}
    assert "90.0%" in {t.get_text() for t in ax.texts}
    with pytest.raises(ValueError, match="fractions"):
        plot_accuracies({"x": {"kNN": 45.0}})
    with pytest.raises(ValueError, match="empty"):
        plot_accuracies({})


def test_stratified_subsample_keeps_class_proportions():
    y = np.array([0] * 800 + [1] * 200)
    idx = plots._stratified(y, 100, seed=0)
    assert len(idx) == 100 and len(set(idx)) == 100
    assert np.bincount(y[idx]).tolist() == [80, 20]


def _levels(accs):
    return [{"labels_per_class": k, "n_labels": (k or 50) * 10, "mean": a, "std": 0.02,
             "accs": [a]} for k, a in zip((1, 10, None), accs, strict=True)]


def test_plot_label_efficiency(tmp_path):
    fig = plot_label_efficiency(_levels([0.3, 0.6, 0.8]))
    check(fig, 1, tmp_path)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "10", "all (50)"]
    assert ax.get_xticks().tolist() == [1.0, 10.0, 50.0]  # "all" at its real count, 50
    fig = plot_label_efficiency({"SimCLR": _levels([0.3, 0.6, 0.8])},
                                baselines={"supervised": 0.9, "random": _levels([.1, .2, .3])})
    check(fig, 1, tmp_path)
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"SimCLR", "supervised", "random", "chance"} <= set(names)


def test_plot_knn_grid(tmp_path):
    bank, y = images(20), torch.arange(20) % 2
    idx = torch.arange(20).roll(1).repeat(4, 1)[:, :5]  # (4, 5)
    fig = plot_knn_grid(bank[:4], bank, idx, n_queries=6, k=3, query_labels=y[:4],
                        bank_labels=y)
    check(fig, 4 * (3 + 1), tmp_path)  # n_queries capped at 4
    # neighbour (row 0, #1) is bank[19], class 1, the query is class 0: a red border
    assert fig.axes[1].spines["top"].get_edgecolor() == matplotlib.colors.to_rgba(plots.BAD)
    check(plot_knn_grid(bank[:2], bank, idx[:2], n_queries=2, k=5), 12, tmp_path)


def test_plot_history(tmp_path):
    rows = [{"epoch": e, "loss": 5 - e / 10, "lr": 0.3 * e / 10, "images_per_s": 1000.0,
             "knn_top1": 0.1 * e if e % 2 == 0 else None} for e in range(1, 11)]
    fig = plot_history(rows)
    check(fig, 3, tmp_path)
    assert "1,000 images/s" in fig.get_suptitle()
    assert len(fig.axes[2].lines[0].get_xdata()) == 5
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(json.dumps({k: v for k, v in r.items() if k != "knn_top1"})
                              for r in rows) + "\n")
    check(plot_history(path), 2, tmp_path)  # no kNN column: loss and lr only
    with pytest.raises(ValueError, match="empty"):
        plot_history([])


def dashed_levels(ax):
    """The y values of the dashed horizontal lines of ``ax``."""
    return [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--"
            and len(set(line.get_ydata())) == 1]


def test_plot_history_reference_lines(tmp_path):
    rows = [{"epoch": e, "loss": 5 - e / 10, "lr": 0.1, "knn_top1": 0.2 + e / 100}
            for e in range(1, 6)]
    plain = plot_history(rows)
    assert dashed_levels(plain.axes[0]) == [] and dashed_levels(plain.axes[2]) == []
    fig = plot_history(rows, num_classes=10, batch_size=128)
    check(fig, 3, tmp_path)
    assert dashed_levels(fig.axes[0]) == pytest.approx([math.log(255)])  # ln(2N - 1)
    assert dashed_levels(fig.axes[2]) == pytest.approx([10.0])  # chance, in percent
    assert dashed_levels(plot_history(rows, num_classes=4).axes[2]) == pytest.approx([25.0])
    assert dashed_levels(fig.axes[1]) == []  # the learning rate gets no line
    assert fig.axes[2].get_ylim()[0] == 0  # from 0 %, so "above chance" is visible
    low_rows = [dict(r, knn_top1=0.05) for r in rows]  # below chance: the line still shows
    assert plot_history(low_rows, num_classes=10).axes[2].get_ylim()[1] > 10.0
    no_knn = [{k: v for k, v in r.items() if k != "knn_top1"} for r in rows]
    check(plot_history(no_knn, num_classes=10, batch_size=64), 2, tmp_path)
    with pytest.raises(ValueError, match="num_classes"):
        plot_history(rows, num_classes=1)
    with pytest.raises(ValueError, match="batch_size"):
        plot_history(rows, batch_size=1)


def test_plot_ablation_bars_seeds_and_lines(tmp_path):
    fig = plot_ablation({"a": [0.2, 0.3], "b": [0.5]}, title="t", xlabel="x",
                        lines={"random encoder": 0.15, "chance": 0.1}, default="b")
    check(fig, 1, tmp_path)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_height() > 0]
    assert [round(b.get_height(), 6) for b in bars] == [25.0, 50.0]  # means, in percent
    dots = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections])
    assert sorted(dots.tolist()) == [20.0, 30.0, 50.0]  # one dot per seed
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b\n(default)"]
    assert [round(line.get_ydata()[0], 6) for line in ax.get_lines()] == [15.0, 10.0]
    assert [t.get_text() for t in ax.texts] == ["25", "50"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["one seed", "random encoder: 15%", "chance: 10%"]


def test_plot_ablation_grouped_and_errors(tmp_path):
    fig = plot_ablation({"none": {"h": [0.3], "z": [0.3]},
                         "MLP": {"h": [0.4, 0.5], "z": [0.2, 0.3]}}, title="heads")
    check(fig, 1, tmp_path)
    ax = fig.axes[0]
    assert sorted(round(p.get_height(), 6) for p in ax.patches) == [25.0, 30.0, 30.0, 45.0]
    assert {"h", "z"} <= {t.get_text() for t in fig.legends[0].get_texts()}
    with pytest.raises(ValueError, match="empty"):
        plot_ablation({}, title="t")
    with pytest.raises(ValueError, match="'a' has no values"):
        plot_ablation({"a": []}, title="t")


def test_plot_ablation_panels_keep_each_series_with_its_own_lines(tmp_path):
    results = {"crop": {"probe": [0.15], "pretext": [0.99]},
               "both": {"probe": [0.3, 0.28], "pretext": [0.08, 0.1]}}
    fig = plot_ablation(results, title="t", xlabel="x",
                        lines={"random encoder, probe": 0.17, "chance": 0.1},
                        panels={"pretext": {"chance (pretext)": 1 / 512}})
    check(fig, 2, tmp_path)
    probe_ax, pretext_ax = fig.axes
    assert [round(p.get_height(), 6) for p in probe_ax.patches] == [15.0, 29.0]
    assert [round(p.get_height(), 6) for p in pretext_ax.patches] == [99.0, 9.0]
    assert [round(ln.get_ydata()[0], 6) for ln in probe_ax.get_lines()] == [17.0, 10.0]
    assert [round(ln.get_ydata()[0], 6) for ln in pretext_ax.get_lines()] == [
        round(100 / 512, 6)]  # the pretext panel has its own chance, not the probe's
    assert pretext_ax.get_title() == "pretext" and probe_ax.get_title() == "probe"
    # one style per kind of line, in every panel: chance dotted, the random encoder dashed
    styles = {ln.get_label(): ln.get_linestyle() for ax in fig.axes for ln in ax.get_lines()}
    assert styles["chance: 10%"] == styles["chance (pretext): 0.2%"] == ":"
    assert styles["random encoder, probe: 17%"] == "--"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"probe", "pretext", "chance: 10%", "chance (pretext): 0.2%"} <= set(labels)
    assert labels.count("one seed") == 1


def test_plot_ablation_legend_fits_the_figure():
    long = {f"a reference line with a long name, number {i}": 0.1 * i for i in range(1, 5)}
    fig = plot_ablation({"a": [0.5], "b": [0.6]}, title="t", lines=long)
    fig.canvas.draw()
    legend, figure = fig.legends[0].get_window_extent(), fig.bbox
    assert figure.x0 <= legend.x0 and legend.x1 <= figure.x1  # not cut off at the sides
    assert len(fig.legends[0].get_texts()) == 5


def test_plot_ablation_chance_is_dotted_wherever_it_comes():
    fig = plot_ablation({"a": [0.5]}, title="t", lines={"chance (shapes)": 0.1,
                                                        "random encoder (shapes)": 0.2})
    styles = [ln.get_linestyle() for ln in fig.axes[0].get_lines()]
    assert styles == [":", "--"]  # the order of the lines does not decide their style
    with pytest.raises(ValueError, match="do not have"):
        plot_ablation({"a": {"h": [0.5]}}, title="t", panels={"z": {}})
    with pytest.raises(ValueError, match="every series"):
        plot_ablation({"a": {"h": [0.5]}}, title="t", panels={"h": {}})


def test_plot_tsne_gives_ten_classes_ten_distinct_colours(tmp_path):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(100) % 10
    h = 5 * torch.eye(10, 16)[y] + torch.randn(100, 16, generator=g)
    fig = plot_tsne(h, y, classes=[f"c{i}" for i in range(10)], max_points=100, perplexity=5)
    check(fig, 1, tmp_path)
    colours = [tuple(np.round(c.get_facecolor()[0][:3], 4)) for c in fig.axes[0].collections]
    assert len(colours) == 10 and len(set(colours)) == 10  # no two classes share a colour
    expected = {tuple(np.round(matplotlib.colors.to_rgb(c), 4)) for c in plots.SCATTER_COLOURS}
    assert set(colours) == expected


def test_plot_accuracies_keeps_a_named_colour_per_metric(tmp_path):
    table = {"1%": {"probe": 0.3, "fine-tuned": 0.1}, "10%": {"probe": 0.5, "fine-tuned": 0.7}}
    fig = plot_accuracies(table, colors={"fine-tuned": "#123456"})
    check(fig, 1, tmp_path)
    by_colour = {}
    for p in fig.axes[0].patches:
        by_colour.setdefault(matplotlib.colors.to_hex(p.get_facecolor()), []).append(
            round(p.get_width(), 6))
    assert sorted(by_colour["#123456"]) == [10.0, 70.0]  # only the named metric's bars
    assert sorted(by_colour[plots.PALETTE[0].lower()]) == [30.0, 50.0]  # the rest: palette


def test_plot_label_efficiency_colours_single_points_and_the_all_level(tmp_path):
    scratch = _levels([0.1, 0.4, 0.9])[:2]  # 1 and 10 labels per class
    everything = [_levels([0.1, 0.4, 0.9])[2]]  # one point: all labels, trained another way
    fig = plot_label_efficiency({"SimCLR": _levels([0.3, 0.6, 0.8])},
                                baselines={"scratch": scratch, "all labels": everything},
                                colors={"scratch": "#123456", "all labels": "#123456"})
    check(fig, 1, tmp_path)
    ax = fig.axes[0]
    lines = {c.get_label(): c.lines[0] for c in ax.containers}  # errorbar: the data line
    assert matplotlib.colors.to_hex(lines["scratch"].get_color()) == "#123456"
    assert matplotlib.colors.to_hex(lines["all labels"].get_color()) == "#123456"
    assert lines["all labels"].get_xydata().tolist() == [[50.0, 90.0]]  # at "all" = 50
    assert lines["all labels"].get_marker() != lines["scratch"].get_marker()
    assert matplotlib.colors.to_hex(lines["SimCLR"].get_color()) == plots.PALETTE[0].lower()
    assert ax.get_xlabel().endswith('"all": every training label')
    assert plot_label_efficiency(scratch).axes[0].get_xlabel() == "labels per class (log scale)"


def test_plot_label_efficiency_single_points_are_markers_and_the_legend_is_below(tmp_path):
    one_run = [dict(r, std=0.0) for r in _levels([0.1, 0.4, 0.9])]  # one run per level
    scratch, everything = one_run[:2], one_run[2:]  # and one point: all labels, another recipe
    fig = plot_label_efficiency({"SimCLR": _levels([0.3, 0.6, 0.8])},
                                baselines={"scratch": scratch, "all labels": everything})
    check(fig, 1, tmp_path)
    ax = fig.axes[0]
    containers = {c.get_label(): c for c in ax.containers}
    assert containers["all labels"].lines[0].get_linestyle() == "None"  # no line to draw
    assert containers["scratch"].lines[0].get_linestyle() == "--"
    assert not containers["scratch"].has_yerr  # std 0 everywhere: no error bars
    assert containers["SimCLR"].has_yerr
    legend = fig.legends[0]
    handles = dict(zip([t.get_text() for t in legend.get_texts()], legend.legend_handles,
                       strict=True))
    assert handles["all labels"].get_linestyle() == "None"  # the legend: a marker alone
    assert handles["scratch"].get_linestyle() == "--"
    fig.savefig(tmp_path / "layout.png")  # lay out, then compare where things are
    legend_box = legend.get_window_extent()
    assert legend_box.y1 <= ax.get_window_extent().y0  # below the axes, not beside them
    assert legend_box.width <= fig.bbox.width


def test_plot_knn_grid_names_the_query_classes(tmp_path):
    bank, y = images(20), torch.arange(20) % 2
    idx = torch.arange(20).roll(1).repeat(4, 1)[:, :5]  # (4, 5)
    fig = plot_knn_grid(bank[:3], bank, idx, n_queries=3, k=2, query_labels=y[:3],
                        bank_labels=y, classes=["cat", "dog"])
    check(fig, 3 * (2 + 1), tmp_path)
    assert [fig.axes[r * 3].get_ylabel() for r in range(3)] == ["cat", "dog", "cat"]
    assert "dashed orange" in fig.get_suptitle()  # the colour plots.BAD is drawn in
    assert fig.axes[1].get_ylabel() == ""  # neighbours are not captioned
    unnamed = plot_knn_grid(bank[:3], bank, idx, n_queries=3, k=2, query_labels=y[:3],
                            bank_labels=y)
    assert unnamed.axes[0].get_ylabel() == ""


def test_plot_accuracies_centres_each_group_on_its_label(tmp_path):
    table = {"SimCLR": {"kNN": 0.45, "probe": 0.7}, "supervised": {"own classifier": 0.9}}
    fig = plot_accuracies(table)
    check(fig, 1, tmp_path)
    centre = {round(p.get_width(), 6): p.get_y() + p.get_height() / 2
              for p in fig.axes[0].patches}
    assert centre[90.0] == pytest.approx(1.0)  # a lone bar sits on its label, no gap
    assert (centre[45.0] + centre[70.0]) / 2 == pytest.approx(0.0)  # a pair straddles it
    assert centre[45.0] < centre[70.0]  # in the order the metrics first appear
