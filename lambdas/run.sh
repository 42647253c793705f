#!/bin/sh
# The Lambda handler. The Lambda Web Adapter layer's /opt/bootstrap (the exec
# wrapper) runs "$LAMBDA_TASK_ROOT/$_HANDLER", i.e. this file, then proxies every
# invoke to the port below. The bundle directory (this file's) is the whole import
# path: dependencies are installed into it next to emd_proxy.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$HERE"
# The proxy logs one JSON line per request itself; uvicorn's access log would repeat it.
# emd_proxy.serve is uvicorn's command line with the garbage collector off from the start.
exec python -m emd_proxy.serve --factory emd_proxy.main:create_app \
    --host 127.0.0.1 --port "${PORT:-8080}" --no-access-log
