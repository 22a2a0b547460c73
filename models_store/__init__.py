"""models_store layer of modelchain (see shared DESIGN.md)."""
