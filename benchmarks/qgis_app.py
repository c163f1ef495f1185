"""Start one headless QgsApplication with Processing and the Planet Terrain provider, for benchmarks."""
from __future__ import annotations

import os

_APP = None
_PROVIDER = None  # keep a Python reference: a collected provider silently unregisters its algorithms


def start():
    """Idempotent: returns the running QgsApplication."""
    global _APP, _PROVIDER
    if _APP is not None:
        return _APP
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("GDAL_PAM_ENABLED", "NO")  # never write .aux.xml next to the shared rasters
    import sys

    from qgis.core import QgsApplication

    _APP = QgsApplication([], False)
    _APP.initQgis()
    plugins = os.path.join(QgsApplication.pkgDataPath(), "python", "plugins")  # where `processing` lives
    if plugins not in sys.path:
        sys.path.append(plugins)
    from processing.core.Processing import Processing

    Processing.initialize()
    from planet_terrain_plugin.processing.provider import PlanetTerrainProvider

    _PROVIDER = PlanetTerrainProvider()
    if not QgsApplication.processingRegistry().addProvider(_PROVIDER):
        raise RuntimeError("could not register the Planet Terrain Processing provider")
    return _APP
