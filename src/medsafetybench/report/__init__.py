"""Presenting results: terminal tables now; HTML reports and figures build on the same summaries."""
