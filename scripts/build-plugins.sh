#!/usr/bin/env bash
# Builds the five example plugins (filter, mask, derive, dedupe, rollup) as Wasm components, the
# same way tests/build.rs does: profile `guest`, target wasm32-wasip2, into target/guests (or
# $WEIR_GUEST_TARGET_DIR). The components land in
#   target/guests/wasm32-wasip2/guest/weir_plugin_<name>.wasm
# which is where the example pipelines under examples/ look for them.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${WEIR_GUEST_TARGET_DIR:-$repo/target/guests}"
cd "$repo"
# Settings meant for host builds must not leak into the guest build.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_TARGET_DIR CARGO_BUILD_TARGET
cargo build --profile guest --target wasm32-wasip2 --target-dir "$target_dir" \
    -p weir-plugin-filter -p weir-plugin-mask -p weir-plugin-derive \
    -p weir-plugin-dedupe -p weir-plugin-rollup
for plugin in filter mask derive dedupe rollup; do
    wasm="$target_dir/wasm32-wasip2/guest/weir_plugin_$plugin.wasm"
    test -f "$wasm" || { echo "build-plugins: $wasm is missing" >&2; exit 1; }
    echo "build-plugins: $wasm sha256:$(sha256sum "$wasm" | cut -d' ' -f1)"
done
