"""The `ragline` command line: start the stack (`up`, `serve`) and use it (`ingest`, `search`, `job`,
`document`, `delete`). The entry point is `ragline.cli.main:main`."""

import os

# gRPC core's INFO lines (one per failed TLS handshake, say) are not ours to print: a person gets
# the client's own sentence, a service log stays JSON. Read once, when grpc is first imported.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
