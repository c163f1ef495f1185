"""Interactive parts: the toolbar action, the rectangle map tool and the background task that classifies."""
