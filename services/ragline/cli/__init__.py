"""The `ragline` command line: start the stack (`up`, `serve`) and use it (`ingest`, `search`, `job`,
`document`, `delete`). The entry point is `ragline.cli.main:main`."""
