"""Processing algorithm ``planet_terrain:classify_mosaic``: a whole mosaic through the batch command, from QGIS.

The work is the batch command's (``core.batch``: partitions on a Dask cluster, GeoParquet, manifest), run as a
child process of this Processing task, so QGIS stays responsive and a crash of the run cannot take QGIS down;
its progress lines drive the task's progress bar, Cancel stops it (the run folder keeps what is finished, and
running the algorithm again with the same folder resumes). The finished run is merged into one GeoPackage,
which gets the class style embedded and is loaded on completion.

The cluster: a local one (one worker per core) unless SCHEDULER, or the ``planet_terrain/dask_scheduler``
setting, names a running Dask scheduler. The batch extra (dask[distributed], rasterio, pyarrow) must be
installed in QGIS's Python; without it the algorithm says so and how to install it.
"""
from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
from pathlib import Path

from qgis.core import (QgsProcessingException, QgsProcessingOutputNumber,
                       QgsProcessingParameterFile, QgsProcessingParameterFolderDestination,
                       QgsProcessingParameterMultipleLayers, QgsProcessingParameterNumber,
                       QgsProcessingParameterString, QgsProcessingParameterVectorDestination, QgsProcessing,
                       QgsSettings, QgsVectorLayer)

from ..core.batch.cli import INSTALL_HINT
from ..core.contract import ContractError, ModelContract, read_contract
from ..core.dependencies import python_executable
from ..core.heads import Head, HeadError, binding_problem, read_head
from ..core.models import NoModelError
from ..qgis_io.classify import Cancelled
from ..qgis_io.model_choice import provider_setting, resolve_model_path
from ..qgis_io.style import apply_style
from .classification_base import ClassificationAlgorithm
from .classify_grid import CELL_UNITS, ClassifyGridAlgorithm
from .styling import StyleOnLoad

#: QGIS setting with the address of a Dask scheduler to use by default (empty: a local cluster).
SETTING_SCHEDULER = "planet_terrain/dask_scheduler"
#: Modules the batch command needs in QGIS's Python (the batch extra, requirements-batch.txt).
BATCH_MODULES = ("distributed", "rasterio", "pyarrow")
_PROGRESS = re.compile(r"\] (\d+)/(\d+) partitions")
#: Name of the style embedded in the merged GeoPackage.
STYLE_NAME = "Planet Terrain"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def missing_batch_modules() -> list[str]:
    return [m for m in BATCH_MODULES if importlib.util.find_spec(m) is None]


def style_geopackage(path: str, layer_name: str, contract: ModelContract) -> None:
    """Embed the class style as the default style of ``layer_name`` in the GeoPackage ``path``."""
    layer = QgsVectorLayer(f"{path}|layername={layer_name}", layer_name, "ogr")
    if not layer.isValid():
        raise QgsProcessingException(f"the merged GeoPackage '{path}' could not be opened to store its style")
    apply_style(layer, contract)
    error = layer.saveStyleToDatabase(STYLE_NAME, "Planet Terrain classes", True, "")
    if error:
        raise QgsProcessingException(f"could not save the style into '{path}': {error}")


class ClassifyMosaicAlgorithm(ClassificationAlgorithm):
    CELL_SIZE, CELL_UNIT, OVERLAP = (ClassifyGridAlgorithm.CELL_SIZE, ClassifyGridAlgorithm.CELL_UNIT,
                                     ClassifyGridAlgorithm.OVERLAP)
    SCHEDULER, WORKERS, RUN_FOLDER = "SCHEDULER", "WORKERS", "RUN_FOLDER"
    CELLS_CLASSIFIED = "CELLS_CLASSIFIED"

    def name(self) -> str:
        return "classify_mosaic"

    def displayName(self) -> str:
        return "Classify a whole mosaic (batch, Dask)"

    def shortHelpString(self) -> str:
        return ("Classifies whole rasters or mosaics (VRT, COG, many files) cell by cell with the batch command "
                "(python -m planet_terrain_plugin.core grid) on a Dask cluster: the cells, fields and decisions of "
                "'Classify raster in a grid', without its cell limit. RUN_FOLDER keeps the partitions and the "
                "manifest: running again with the same folder resumes a cancelled or failed run. SCHEDULER: the "
                f"address of a Dask scheduler (default: the '{SETTING_SCHEDULER}' setting, else a local cluster). "
                "HEAD: a head taught on the model (teach_head): the cells get its classes, name and version. "
                "Needs dask[distributed], rasterio and pyarrow in QGIS's Python.")

    def createInstance(self) -> "ClassifyMosaicAlgorithm":
        return ClassifyMosaicAlgorithm()

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterMultipleLayers(self.INPUT, "Rasters or mosaics",
                                                               QgsProcessing.TypeRaster))
        grid = ClassifyGridAlgorithm()  # the cell parameters are classify_grid's, defined once there
        grid.initAlgorithm()
        for name in (self.CELL_SIZE, self.CELL_UNIT, self.OVERLAP):
            self.addParameter(grid.parameterDefinition(name).clone())
        self.addParameter(QgsProcessingParameterString(self.SCHEDULER, "Dask scheduler address (default: setting, "
                                                       "else a local cluster)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(self.WORKERS, "Local cluster workers (0: one per core)",
                                                       QgsProcessingParameterNumber.Integer, defaultValue=0,
                                                       minValue=0))
        self.add_model_parameters()  # the Dask workers load the model file, and the head file when given
        self.addParameter(QgsProcessingParameterFolderDestination(self.RUN_FOLDER, "Run folder (partitions and "
                                                                  "manifest; reuse it to resume)"))
        self.addParameter(QgsProcessingParameterVectorDestination(self.OUTPUT, "Terrain classes (merged "
                                                                  "GeoPackage)", QgsProcessing.TypeVectorPolygon))
        self.addOutput(QgsProcessingOutputNumber(self.CELLS_CLASSIFIED, "Cells classified"))

    def processAlgorithm(self, parameters, context, feedback):
        missing = missing_batch_modules()
        if missing:
            raise QgsProcessingException(f"classify_mosaic needs {', '.join(missing)} in QGIS's Python "
                                         f"({python_executable()}): {INSTALL_HINT} (from a Planet Terrain "
                                         "checkout), or pip install 'dask[distributed]' rasterio pyarrow.")
        layers = self.parameterAsLayerList(parameters, self.INPUT, context)
        if not layers:
            raise QgsProcessingException("INPUT: no raster given; choose one or more raster layers or files.")
        try:
            model = resolve_model_path(self.parameterAsFile(parameters, self.MODEL, context) or None)
            contract = read_contract(model)
        except (NoModelError, ContractError) as exc:
            raise QgsProcessingException(f"{self.MODEL}: {exc}") from None
        head = self._head(parameters, context, model)  # refused before any work, as the other algorithms do
        if head is not None:
            contract = head.contract_for(contract)  # the merged layer's fields and style are the head's
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        if not output.lower().endswith(".gpkg"):
            output = os.path.splitext(output)[0] + ".gpkg"
        if os.path.exists(output):
            raise QgsProcessingException(f"OUTPUT: '{output}' already exists, and Planet Terrain never replaces a "
                                         "file. Choose another file name, or delete the file first.")
        folder = self.parameterAsString(parameters, self.RUN_FOLDER, context)
        try:
            self._batch(["grid", *[layer.source().split("|")[0] for layer in layers], "--out", folder, "--model",
                         model, *self._options(parameters, context)], feedback, 0.0, 95.0)
            self._batch(["merge", folder, "--out", output], feedback, 95.0, 99.0)
        except Cancelled as exc:  # a cancel is no failure: the run ends normally, without OUTPUT, and says so
            feedback.pushWarning(str(exc))
            return {self.RUN_FOLDER: folder, self.CELLS_CLASSIFIED: 0}
        style_geopackage(output, "terrain_grid", contract)
        StyleOnLoad.attach(context, output, contract)
        count = QgsVectorLayer(f"{output}|layername=terrain_grid", "merged", "ogr").featureCount()
        return {self.OUTPUT: output, self.RUN_FOLDER: folder, self.CELLS_CLASSIFIED: count}

    def _head(self, parameters, context, model: str) -> Head | None:
        """The head in HEAD, or None; refused, naming HEAD, when unreadable or taught on another model file."""
        path = self.parameterAsFile(parameters, self.HEAD, context)
        if not path:
            return None
        try:
            head = read_head(path)
        except HeadError as exc:
            raise QgsProcessingException(f"{self.HEAD}: {exc}") from None
        problem = binding_problem(head, model)
        if problem:
            raise QgsProcessingException(f"{self.HEAD}: {problem}")
        return head

    def _options(self, parameters, context) -> list[str]:
        args = ["--provider", provider_setting()]
        head = self.parameterAsFile(parameters, self.HEAD, context)
        if head:
            args += ["--head", head]
        if parameters.get(self.CELL_SIZE) not in (None, "") and \
                self.parameterAsDouble(parameters, self.CELL_SIZE, context) > 0:
            unit = CELL_UNITS[self.parameterAsEnum(parameters, self.CELL_UNIT, context)]
            args += ["--cell-size-m" if unit == "metres" else "--cell-px",
                     repr(self.parameterAsDouble(parameters, self.CELL_SIZE, context))]
        args += ["--overlap", repr(self.parameterAsDouble(parameters, self.OVERLAP, context))]
        if parameters.get(self.THRESHOLD) not in (None, ""):
            args += ["--threshold", repr(self.parameterAsDouble(parameters, self.THRESHOLD, context))]
        body = self.body_choice(parameters, context)
        if body != "auto":
            args += ["--body", body]
        scheduler = self.parameterAsString(parameters, self.SCHEDULER, context) or \
            str(QgsSettings().value(SETTING_SCHEDULER, "") or "")
        if scheduler:
            args += ["--scheduler", scheduler]
        workers = self.parameterAsInt(parameters, self.WORKERS, context)
        if workers > 0:
            args += ["--workers", str(workers)]
        return args

    def _batch(self, args: list[str], feedback, start: float, end: float) -> None:
        """Run one batch subcommand, its lines in the log and its progress on the bar; cancel stops it."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(_REPO_ROOT),
                                                                         os.environ.get("PYTHONPATH")])))
        proc = subprocess.Popen([python_executable(), "-m", "planet_terrain_plugin.core", *args], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                start_new_session=True)
        last = []
        for line in proc.stdout:
            line = line.rstrip()
            last = (last + [line])[-5:]
            feedback.pushInfo(line)
            match = _PROGRESS.search(line)
            if match:
                done, total = int(match.group(1)), int(match.group(2))
                feedback.setProgress(start + (end - start) * done / max(total, 1))
            if feedback.isCanceled():
                os.killpg(proc.pid, signal.SIGTERM)
                break
        proc.stdout.close()
        code = proc.wait()
        if feedback.isCanceled():
            raise Cancelled("Cancelled; the run folder keeps the finished partitions and no merged GeoPackage was "
                            "written: run the algorithm again with the same RUN_FOLDER to resume.")
        if code != 0:
            detail = next((l for l in reversed(last) if l.startswith("error:")), last[-1] if last else "")
            raise QgsProcessingException(f"the batch command failed (exit {code}): {detail}")
