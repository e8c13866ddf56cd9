"""The indexer stage: write embedded chunks to the vector store and answer searches."""
