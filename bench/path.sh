#!/usr/bin/env bash
# bench/path.sh: the request path's table (issue 16): echo (coalesce-echo-server), coalesce with
# its defaults and unbatched (--max_batch_size=1 --workers=8), each driven at every in-flight
# level by coalesce-bench and by h2load (nghttp2, an independent generator) with the same request
# bytes, with the server's CPU time per request over each measurement window.
#
#   BUILD=build-cuda OUT_DIR=/tmp/path bench/path.sh       # GPU host (LD_LIBRARY_PATH set)
#   BUILD=build DEVICE=cpu bench/path.sh                   # here
#
# It is bench/run.sh restricted to those configurations, without the open-loop pass; the table is
# OUT_DIR/path.md (and the end of OUT_DIR/table.txt). LEVELS (space- or comma-separated) sets the
# levels; every bench/run.sh knob applies.
set -euo pipefail
LEVELS=${LEVELS:-8 64 256}
export CONCURRENCY=${CONCURRENCY:-${LEVELS// /,}}
export CONFIGS=${CONFIGS:-coalesce echo unbatched}
export H2LOAD_CONFIGS=${H2LOAD_CONFIGS-echo coalesce unbatched}
export OPEN_LOOP_FRACTION=${OPEN_LOOP_FRACTION:-0}
export OUT_DIR=${OUT_DIR:-/tmp/coalesce-path-$(date +%Y%m%d-%H%M%S)}
exec "$(dirname "${BASH_SOURCE[0]}")/run.sh"
