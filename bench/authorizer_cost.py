"""What the API Gateway Lambda authorizer costs on a cache miss, as it starts in Lambda:
the trimmed code bundle (infra/bundling.py, built for this machine, with bytecode) on
PYTHONPATH, a bare interpreter without site-packages (-S), Secrets Manager served by a
moto server on loopback.

    .venv/bin/python bench/authorizer_cost.py [--runs 15] [--out bench/results/authorizer_cost.json]

Per fresh process: `import_ms` (importing emd_proxy.authorizer), `first_call_ms` (the
first invoke: Secrets Manager client creation, GetSecretValue, parse, compare),
`refresh_ms` (a later invoke whose key cache expired: GetSecretValue with the client
made), `warm_ms` (keys cached: the handler's own work). API Gateway's own authorizer
invoke overhead and Lambda's cold start are not in these numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.bundling import build_bundle, host_target  # noqa: E402

_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import emd_proxy.authorizer as a
t1 = time.perf_counter()
event = {"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:1:abc/prod/GET/v1/models",
         "headers": {"Authorization": "Bearer " + sys.argv[1]}}
a.handler(event, None)
t2 = time.perf_counter()
warm = []
for _ in range(200):
    s = time.perf_counter(); a.handler(event, None); warm.append(time.perf_counter() - s)
refresh = []
for _ in range(20):
    a._get()._keys._expires = 0.0
    s = time.perf_counter(); a.handler(event, None); refresh.append(time.perf_counter() - s)
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "first_call_ms": (t2 - t1) * 1e3,
                  "refresh_ms": sorted(refresh)[10] * 1e3, "warm_ms": sorted(warm)[100] * 1e3}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/authorizer_cost.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="emd-authorizer-"))
    bundle = work / "bundle"
    build_bundle(bundle, registry_json="[]", target=host_target())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        secrets = boto3.client("secretsmanager", endpoint_url=url, region_name="us-east-1", **creds)
        key = "k" * 48
        # A document of a realistic size: the caller's key among 20 others.
        document = {"default": key, **{f"key{i}": f"{i:048d}" for i in range(20)}}
        arn = secrets.create_secret(Name="emd-bench-keys", SecretString=json.dumps(document))["ARN"]
        env = {
            "PYTHONPATH": str(bundle),
            "HOME": "/nonexistent",
            "PATH": "/usr/bin:/bin",
            "NO_PROXY": "127.0.0.1",
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "EMD_API_KEY_SECRET_ID": arn,
            "EMD_PREFIX": "EMD",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        python = getattr(sys, "_base_executable", sys.executable)
        runs = [
            json.loads(
                subprocess.run(
                    [python, "-S", "-c", _PROBE, key],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(args.runs)
        ]
    finally:
        server.stop()
    summary = {
        field: {
            "median": round(statistics.median(r[field] for r in runs), 3),
            "min": round(min(r[field] for r in runs), 3),
            "max": round(max(r[field] for r in runs), 3),
        }
        for field in ("import_ms", "first_call_ms", "refresh_ms", "warm_ms")
    }
    result = {"python": sys.version.split()[0], "runs": args.runs, "summary": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
