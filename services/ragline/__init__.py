"""ragline: non-blocking document ingestion for retrieval-augmented generation.

The distribution holds the gateway (`ragline.gateway`), the three pipeline stages
(`ragline.chunker`, `ragline.embedder`, `ragline.indexer`), the small core they share
(`ragline.broker`, `ragline.jobs`, `ragline.config`, `ragline.errors`) and the services' own
generated contracts (`ragline.v1`). The public API's generated messages (`ragline_client.v1`)
and the Python client ship in the `ragline-client` distribution, which this one depends on.
"""

__version__ = "0.1.0"
