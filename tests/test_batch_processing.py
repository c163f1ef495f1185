"""``planet_terrain:classify_mosaic``: the batch command run from QGIS Processing on a local Dask cluster, merged,
styled and loadable; the same cells as ``classify_grid``; a second run with the same run folder resumes."""
from __future__ import annotations

import sqlite3

from qgis.core import QgsCategorizedSymbolRenderer, QgsRasterLayer, QgsVectorLayer

from conftest import VESTA_DAWN, raster_path
from crs_equivalence import equivalent_crs

MOSAIC = "planet_terrain:classify_mosaic"


def test_classify_mosaic_classifies_merges_and_styles_like_classify_grid(terrain_processing, tiny_model,
                                                                        tmp_path):
    import processing

    path = str(raster_path(VESTA_DAWN))
    run_folder, output = tmp_path / "run", tmp_path / "mosaic.gpkg"
    params = {"INPUT": [path], "CELL_SIZE": 24, "CELL_UNIT": 1, "MODEL": str(tiny_model), "WORKERS": 2,
              "RUN_FOLDER": str(run_folder), "OUTPUT": str(output)}
    result = processing.run(MOSAIC, params)
    assert result["OUTPUT"] == str(output) and (run_folder / "manifest.jsonl").is_file()
    grid = processing.run("planet_terrain:classify_grid", {"INPUT": path, "CELL_SIZE": 24, "CELL_UNIT": 1,
                                                           "MODEL": str(tiny_model), "OUTPUT": "memory:"})
    assert result["CELLS_CLASSIFIED"] == grid["CELLS_CLASSIFIED"] > 0
    layer = QgsVectorLayer(f"{output}|layername=terrain_grid", "mosaic", "ogr")
    raster = QgsRasterLayer(path, "vesta")
    assert layer.isValid() and equivalent_crs(raster.crs(), layer.crs(), raster.extent())
    assert isinstance(layer.renderer(), QgsCategorizedSymbolRenderer)  # the embedded default style
    assert layer.renderer().classAttribute() == "label"
    with sqlite3.connect(output) as con:
        assert con.execute("SELECT COUNT(*) FROM layer_styles WHERE useAsDefault").fetchone()[0] == 1

    again = processing.run(MOSAIC, dict(params, OUTPUT=str(tmp_path / "again.gpkg")))
    assert again["CELLS_CLASSIFIED"] == result["CELLS_CLASSIFIED"]  # resumed from the run folder: nothing redone
    lines = (run_folder / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 1 + len(list(run_folder.glob("part-*.parquet")))


def test_classify_mosaic_refuses_an_existing_output(terrain_processing, tiny_model, tmp_path):
    import processing
    import pytest
    from qgis.core import QgsProcessingException

    output = tmp_path / "mine.gpkg"
    output.write_bytes(b"not ours")
    with pytest.raises(QgsProcessingException, match="already exists, and Planet Terrain never replaces a file"):
        processing.run(MOSAIC, {"INPUT": [str(raster_path(VESTA_DAWN))], "MODEL": str(tiny_model),
                                "RUN_FOLDER": str(tmp_path / "run"), "OUTPUT": str(output)})
    assert output.read_bytes() == b"not ours"


def test_a_cancelled_mosaic_is_no_failure_and_the_run_folder_resumes(terrain_processing, tiny_model, tmp_path):
    """Cancel stops the batch command, ends the run normally without OUTPUT (no "Task failed"), says how to
    resume, and the same RUN_FOLDER then finishes the job with every cell."""
    import processing
    from qgis.core import QgsProcessingFeedback

    class Feedback(QgsProcessingFeedback):
        warnings: list[str] = []

        def pushWarning(self, text):  # noqa: N802 (Qt's name)
            self.warnings.append(text)

    feedback = Feedback()
    feedback.progressChanged.connect(lambda p: feedback.cancel() if p > 0 else None)
    path = str(raster_path(VESTA_DAWN))
    run_folder, output = tmp_path / "run", tmp_path / "mosaic.gpkg"
    params = {"INPUT": [path], "CELL_SIZE": 24, "CELL_UNIT": 1, "MODEL": str(tiny_model), "WORKERS": 1,
              "RUN_FOLDER": str(run_folder), "OUTPUT": str(output)}
    result = processing.run(MOSAIC, params, feedback=feedback)
    assert result.get("OUTPUT") is None and not output.exists() and result["RUN_FOLDER"] == str(run_folder)
    assert any("same RUN_FOLDER" in w for w in feedback.warnings)
    done = processing.run(MOSAIC, params)
    grid = processing.run("planet_terrain:classify_grid", {"INPUT": path, "CELL_SIZE": 24, "CELL_UNIT": 1,
                                                           "MODEL": str(tiny_model), "OUTPUT": "memory:"})
    assert done["OUTPUT"] == str(output) and done["CELLS_CLASSIFIED"] == grid["CELLS_CLASSIFIED"]
