"""Training tree of the Planet Terrain default model (torch at the edge; the plugin core stays torch-free)."""
