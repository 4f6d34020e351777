"""Every plot function returns a Figure with the expected axes, and never touches pyplot."""

import json
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
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "10", "all"]
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
