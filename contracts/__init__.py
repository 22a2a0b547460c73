"""contracts layer of modelchain (see shared DESIGN.md)."""
