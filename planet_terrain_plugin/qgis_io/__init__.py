"""The QGIS side of the data flow: pixels in from a raster provider, features out to a vector layer.

Kept thin on purpose: every decision about images, models and bodies is made in ``core``; these modules only
translate between QGIS objects (providers, CRSs, layers) and the core's plain numpy arrays and dataclasses.
"""
