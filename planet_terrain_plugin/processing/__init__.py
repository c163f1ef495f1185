"""Processing provider ``planet_terrain``: every user-facing action as an algorithm (model builder, batch,
``qgis_process``)."""
