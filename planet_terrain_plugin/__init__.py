"""Planet Terrain: what terrain is this? A QGIS plugin for Mars, Moon and Vesta rasters."""


def classFactory(iface):  # noqa: N802 -- QGIS's plugin entry point
    """QGIS (and qgis_process, with ``iface`` None) calls this to create the plugin.

    Loads whatever onnxruntime is or is not: packages installed into the profile are put on ``sys.path`` first,
    and a missing onnxruntime is logged and (desktop) offered for installation, never raised.
    """
    from .gui.dependency_dialog import check_on_load
    from .plugin import PlanetTerrainPlugin

    check_on_load(iface)
    return PlanetTerrainPlugin(iface)
