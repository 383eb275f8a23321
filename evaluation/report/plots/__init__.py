"""One module per plot; each returns the plot's SVG, or None when there is nothing to draw yet."""
