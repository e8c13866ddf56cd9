"""The gateway's HTTP/JSON API with server-sent events, beside its gRPC API: `routes` is the
one table, `app` the aiohttp transport, `errors` the answers, `openapi` the document."""
