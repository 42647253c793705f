"""What bench/compare.py and bench/proxy_latency.py are made of, one module per job
(bench/README.md lists them). The drivers import it as `lib`: a script's own folder
is on sys.path when it runs."""

from pathlib import Path

HOST = "127.0.0.1"  # every bench server listens on loopback only
BENCH_DIR = Path(__file__).resolve().parent.parent
ROOT = BENCH_DIR.parent
