"""Whole mosaics outside QGIS: the core's grid, preprocessing and inference fanned out over a Dask cluster.

``python -m planet_terrain_plugin.core grid INPUT... --out DIR`` cuts each raster's grid (``core.grid``, the
cells of ``classify_grid``) into partitions aligned to the raster's tiles; each partition is one task that reads
its cells with rasterio, classifies them with ``core.pipeline`` and writes one GeoParquet file; a manifest
records the finished ones so a rerun resumes. ``... merge DIR --out FILE.gpkg`` writes one GeoPackage for QGIS.

Needs the batch extra (``requirements-batch.txt``: dask[distributed], rasterio, pyarrow); nothing here is
imported by the QGIS plugin at load time.
"""
