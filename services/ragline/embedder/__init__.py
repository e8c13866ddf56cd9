"""The embedder stage: turn chunks into vectors with the embedding model."""
