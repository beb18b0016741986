"""Interactive views (pyvis), static plots and the HTML report."""
