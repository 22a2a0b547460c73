"""modelchain: a model marketplace on its own proof-of-work chain.

The repository keeps each layer at its top (chain/, contracts/, models_store/,
market/, web/); they install as subpackages of this one namespace.
"""

__version__ = "0.1.0"
