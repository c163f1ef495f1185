"""The lunar case of the few-shot benchmark: teach "crater" vs "plain" on one Apollo frame, test on the other.

The cells were labelled by hand, by looking at each frame drawn with a 96-px grid: a point on the centre of a
crater that fills most of a cell, and a point on a smooth stretch of mare with only small pits (no crater wider
than about a fifth of the cell) for "plain". As in the plugin, a point stands for the 96-px cell centred on it
(``qgis_io.teach``), read through ``engine.read_cell``. The shipped head answers "crater" or not (``impact
ejecta`` and ``unknown`` count as "plain"); the taught head answers "crater", "plain" or ``unknown``.
A montage of the labelled cells is written next to the figures, so anyone can check the labels.
"""
from __future__ import annotations

import numpy as np

from benchmarks.common import SHARED
from benchmarks.fewshot import OUT

FRAMES = ("AS15-M-0295_SML_geo.tif", "AS15-M-0296_SML_geo.tif")
CELL = 96
#: (column, row) pixel centres per frame and label, read off the frames.
POINTS: dict[str, dict[str, list[tuple[int, int]]]] = {
    FRAMES[0]: {
        "crater": [(1191, 441), (916, 430), (1037, 378), (424, 819), (951, 945), (298, 945), (1100, 664),
                   (1060, 767), (762, 1031), (355, 143), (218, 364), (1088, 269), (292, 722), (659, 275)],
        "plain": [(527, 344), (733, 344), (641, 538), (745, 641), (802, 493), (538, 573), (1123, 527), (710, 424),
                  (596, 710), (985, 515), (493, 447)],
    },
    FRAMES[1]: {
        "crater": [(435, 288), (300, 500), (182, 606), (682, 876), (547, 994), (1200, 476), (941, 335),
                   (1035, 1076), (547, 776), (1288, 453), (629, 188), (482, 414)],
        "plain": [(824, 506), (918, 612), (765, 612), (1000, 753), (894, 729), (353, 612), (729, 694), (976, 447),
                  (353, 765), (847, 424)],
    },
}


def frame_cells(frame: str, model):
    """The labelled cells of ``frame`` as teach examples, their pixels, embeddings and the shipped logits."""
    from qgis.core import QgsRasterLayer, QgsRectangle

    from planet_terrain_plugin.core.grid import Cell
    from planet_terrain_plugin.core.pipeline import prepare_blocks
    from planet_terrain_plugin.qgis_io.engine import read_cell
    from planet_terrain_plugin.qgis_io.raster_read import raster_source
    from planet_terrain_plugin.qgis_io.teach import Example

    layer = QgsRasterLayer(str(SHARED / "data" / "rasters" / frame), frame)
    source = raster_source(layer)
    px, py = source.pixel_size
    x0, y1 = source.extent.xMinimum(), source.extent.yMaximum()
    examples = []
    for label, points in POINTS[frame].items():
        for col, row in points:
            x, y = x0 + col * px, y1 - row * py
            examples.append(Example(QgsRectangle(x - CELL / 2 * px, y - CELL / 2 * py, x + CELL / 2 * px,
                                                 y + CELL / 2 * py), label, len(examples)))
    reads = [read_cell(source, Cell(0, 0, e.rect.xMinimum(), e.rect.yMinimum(), e.rect.xMaximum(),
                                    e.rect.yMaximum()), model.contract.input_size, 0.0) for e in examples]
    batch = prepare_blocks(model.contract, [r[0] for r in reads], [r[1] for r in reads])
    assert len(batch.usable) == len(examples), "a labelled cell lies mostly on nodata"
    out = model.run(batch.tensors)
    return source, examples, reads, out.embedding, out.logits


def scores(truth: list[str], predicted: list[str]) -> dict:
    right = [t == p for t, p in zip(truth, predicted)]
    recall = {c: float(np.mean([p == c for t, p in zip(truth, predicted) if t == c])) for c in ("crater", "plain")}
    return {"accuracy": float(np.mean(right)), "recall": recall, "n": len(truth),
            "abstained": sum(p == "unknown" for p in predicted)}


def montage(cells: dict[str, tuple], contract, path) -> None:
    """Every labelled cell as the model sees it (8-bit stretch), titled with its frame and label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from planet_terrain_plugin.core.preprocess import stretched_gray

    rows = [(frame, e.label, r) for frame, (_, examples, reads, *_rest) in cells.items() for e, r in
            zip(examples, reads)]
    cols = 13
    fig, axes = plt.subplots((len(rows) + cols - 1) // cols, cols, figsize=(cols, (len(rows) + cols - 1) // cols))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (frame, label, read) in zip(axes.ravel(), rows):
        gray, _ = stretched_gray(read[0], contract, read[1])
        ax.imshow(gray, cmap="gray")
        ax.set_title(f"{frame[7:11]} {label}", fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def moon(model_path: str) -> dict:
    """Teach on each frame, test on the other; the shipped head on the same test cells."""
    from benchmarks.qgis_app import start
    from planet_terrain_plugin.core.calibrate import decide
    from planet_terrain_plugin.core.heads import attach_head
    from planet_terrain_plugin.core.session import NetworkOutputs, load_model
    from planet_terrain_plugin.qgis_io.teach import teach_from_examples

    start()
    model = load_model(model_path)
    cells = {frame: frame_cells(frame, model) for frame in FRAMES}
    result = {}
    for teach_on, test_on in (FRAMES, FRAMES[::-1]):
        source, examples, *_ = cells[teach_on]
        head = teach_from_examples(source, examples, model, "moon-craters", "1").head
        _, test_examples, _, _emb, logits = cells[test_on]
        taught = attach_head(model, head)
        head_out = head.outputs(NetworkOutputs(logits, cells[test_on][3]))
        taught_labels = [d.label for d in decide(head_out.logits, taught.contract, "Moon", None, head_out.ood_score)]
        shipped = ["crater" if d.label == "crater" else "plain" for d in decide(logits, model.contract, "Moon")]
        truth = [e.label for e in test_examples]
        result[f"teach {teach_on[:11]} -> test {test_on[:11]}"] = {
            "taught": scores(truth, taught_labels), "shipped": scores(truth, shipped), "cv": head.cv}
    montage(cells, model.contract, OUT / "moon_cells.png")
    return result
