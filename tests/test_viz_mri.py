"""Tests of the MRI chapter's figures (uqxai_lib.viz.mri): every function draws and returns a figure."""
import matplotlib
import torch

from uqxai_lib import metrics
from uqxai_lib.studies import mri as sm
from uqxai_lib.viz import mri as vz

matplotlib.use("Agg")


def test_figures_are_returned():
    g = torch.Generator().manual_seed(4)
    img = torch.rand(16, 16, generator=g)
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[4:8, 4:8] = True
    mc = torch.rand(5, 4, 4, generator=g)
    case = dict(image=img, det=torch.rand(4, 4, generator=g), mc=mc, mean=mc.mean(0), std=mc.std(0),
                rho=torch.rand(5, generator=g), rho_mean=0.5, mask=mask, title="t", overlap={"det": 0.3, "mean": 0.4})
    figs = [
        vz.plot_fig4([case, dict(case, mask=None, overlap=None)], n_mc=3),
        vz.plot_confusion(metrics.classification_summary(torch.eye(4), torch.arange(4))["confusion"], "abcd"),
        vz.plot_gallery([img, img], ["x", "y"], masks=[mask, None]),
        vz.plot_rho_vs_uncertainty(torch.rand(20, generator=g), {"e": torch.rand(20, generator=g)},
                                   torch.rand(20, generator=g) > 0.3, spearman={"e": 0.1}),
        vz.plot_mc_frame([dict(image=img, mean=case["det"], std=case["det"], title="a", mask=mask)]),
        vz.plot_rho_groups(torch.tensor([0.9, float("nan"), 0.5, 0.7]), torch.tensor([True, True, False, False])),
        vz.plot_rho_groups(torch.tensor([0.9, 0.8]), torch.tensor([True, True]), title="no errors"),
    ]
    corr = torch.rand(30, generator=g) > 0.2
    curves, table = sm.abstention(corr, {"s": torch.rand(30, generator=g)})
    figs.append(vz.plot_abstention(curves, aurc=table["AURC"].to_dict()))
    sweep = sm.sweep_table({0.1: torch.rand(30, generator=g), 0.5: torch.rand(30, generator=g)},
                           {0.1: corr, 0.5: corr}, "dropout p")
    tsw = sm.sweep_table({2: torch.rand(30, generator=g), 5: torch.rand(30, generator=g)}, {2: corr, 5: corr},
                         "passes T")
    settle = sm.settling(torch.rand(2, 30, generator=g), [2, 5])
    figs.append(vz.plot_sweeps(sweep, tsw, settle))
    hist = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_accuracy": 0.5} for e in (1, 2, 3)]
    figs.append(vz.plot_training(hist, best_epoch=2, confusion=torch.eye(4).long(), classes="abcd"))
    figs.append(vz.plot_sanity([img, img], [torch.rand(2, 4, 4, generator=g)] * 3, ["trained", "a", "b"],
                               masks=[mask, None]))
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)
    st = sm.MCStudy(maps=torch.rand(3, 2, 4, 4, generator=g), probs=torch.softmax(torch.rand(3, 2, 4, generator=g), -1),
                    target=torch.zeros(2, dtype=torch.long), det_map=torch.rand(2, 4, 4, generator=g),
                    det_probs=torch.full((2, 4), 0.25))
    case = sm.fig4_case(st, 1, img, "t", passes=2, mask=mask, mass=0.3)
    assert case["mc"].shape == (2, 4, 4) and set(case["overlap"]) == {"det"}
    figs.append(vz.plot_fig4([case], n_mc=2))
    frames = vz.mc_frames(sm.mc_frame_items({0.1: st, 0.5: st}, [0, 1], [3, 2], [img, img], ["a", "b"], "abcd",
                                            masks=[mask, None]))
    assert len(frames) == 2 and all(len(r) == 2 for r in frames)
    assert all(f.startswith(b"\x89PNG") for r in frames for f in r)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_figures_fit_the_text_column():
    """Every figure of the chapter is drawn for the 688 px column (at 100 px per inch) and Fig. 4 keeps
    its panels square-ish (two rows of four per case), so the page shows it without squashing."""
    g = torch.Generator().manual_seed(5)
    img = torch.rand(16, 16, generator=g)
    mc = torch.rand(5, 4, 4, generator=g)
    case = dict(image=img, det=mc[0], mc=mc, mean=mc.mean(0), std=mc.std(0), rho=torch.rand(5, generator=g),
                rho_mean=0.5, mask=None, title="t")
    fig = vz.plot_fig4([case, case])
    w, h = fig.get_size_inches()
    assert w * 100 <= 654 and 0.9 < h / w < 1.5
    panels = [ax for ax in fig.axes
              if ax.get_images() and ax.get_label() != "<colorbar>" and ax.get_position().width > 0.1]
    assert len(panels) >= 16
    fig2 = vz.plot_sweeps(sm.sweep_table({0.1: torch.rand(9, generator=g)}, {0.1: torch.rand(9, generator=g) > 0.3},
                                         "p"),
                          sm.sweep_table({2: torch.rand(9, generator=g)}, {2: torch.rand(9, generator=g) > 0.3}, "T"),
                          sm.settling(torch.rand(1, 9, generator=g), [2]))
    assert fig2.get_size_inches()[0] * 100 <= 654
    import matplotlib.pyplot as plt

    plt.close("all")
