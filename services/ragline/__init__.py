"""ragline: non-blocking document ingestion for retrieval-augmented generation.

The distribution holds the gateway (`ragline.gateway`), the three pipeline stages
(`ragline.chunker`, `ragline.embedder`, `ragline.indexer`), the small core they share
(`ragline.broker`, `ragline.jobs`, `ragline.config`, `ragline.errors`) and the generated
contracts (`ragline.v1`). The Python client lives in `ragline_client`.
"""

__version__ = "0.1.0"
