"""The demo's boundary-IoU plot: bIoU@n against the band width n, one line
per model, error bars over seeds (matplotlib, no display needed)."""
from typing import Dict, Sequence

PLOT_SIZE = (800, 500)  # (w, h) pixels of the PNG
_DPI = 100


def biou_plot(path: str,
              widths: Sequence[int],
              summary: Dict[str, Dict[str, Dict[str, float]]],
              labels: Sequence[str],
              title: str = '') -> str:
    """Write the plot to ``path`` (PNG of :data:`PLOT_SIZE`) and return it.

    Args:
        path: output file.
        widths: band widths n (x axis), e.g. (3, 5, 8, 12).
        summary: per label, per metric ``'bIoU@n'``, ``{'mean', 'std'}``.
        labels: the models to draw, in order.
        title: figure title.

    Error bars: +- one sample standard deviation over seeds (0 for one
    seed).
    """
    # a bare Figure renders with Agg: no pyplot state, no display
    from matplotlib.figure import Figure
    fig = Figure(figsize=(PLOT_SIZE[0] / _DPI, PLOT_SIZE[1] / _DPI),
                 dpi=_DPI)
    ax = fig.add_subplot(1, 1, 1)
    for i, label in enumerate(labels):
        means = [summary[label][f'bIoU@{n}']['mean'] for n in widths]
        stds = [summary[label][f'bIoU@{n}']['std'] for n in widths]
        # a small horizontal shift keeps overlapping bars readable
        xs = [n + (i - (len(labels) - 1) / 2) * 0.15 for n in widths]
        ax.errorbar(xs, means, yerr=stds, marker='o', capsize=4,
                    label=label)
    ax.set_xticks(list(widths))
    ax.set_xlabel('boundary band width n (px)')
    ax.set_ylabel('bIoU@n (%)')
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()  # layout only: the canvas keeps PLOT_SIZE
    fig.savefig(path, dpi=_DPI, format='png')
    return path
