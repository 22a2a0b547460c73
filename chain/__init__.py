"""chain layer of modelchain (see shared DESIGN.md)."""
