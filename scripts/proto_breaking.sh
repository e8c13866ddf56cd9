#!/usr/bin/env bash
# buf breaking: the protos here (committed or not) against those of the previous commit, with
# buf.yaml's FILE rules, so that a change which breaks generated clients in any language (a
# renamed field, a moved message, a changed go_package) is a decision, not an accident.
# To make one on purpose: land it in a commit of its own that says so; the next commit passes.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! git rev-parse -q --verify 'HEAD~1^{commit}' >/dev/null; then
  echo "proto_breaking: no previous commit to compare with (a shallow clone?); skipping buf breaking"
  exit 0
fi
npx --yes @bufbuild/buf breaking --against '.git#ref=HEAD~1' || {
  echo "the protos break compatibility with the previous commit (above): restore what changed," \
       "or, if the break is meant, commit it alone and say why" >&2
  exit 1
}
