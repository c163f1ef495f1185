"""Planet Terrain: what terrain is this? A QGIS plugin for Mars, Moon and Vesta rasters."""


def classFactory(iface):  # noqa: N802 -- QGIS's plugin entry point
    """QGIS (and qgis_process, with ``iface`` None) calls this to create the plugin."""
    from .plugin import PlanetTerrainPlugin

    return PlanetTerrainPlugin(iface)
