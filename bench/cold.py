"""Cold misses from S3: every request a different object, through moto's S3 server.

The test S3 server is the bottleneck here, so requests per second say little;
what edge controls is its own CPU per request, set against the CPU one plain
aiobotocore ``get_object`` (and reading its body) costs a client, measured in
the same run on the same core. Run as part of ``python -m bench.load``;
``python -m bench.cold ENDPOINT BUCKET COUNT`` is the baseline client alone.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.measure import LOAD_CORE, SERVER_CORE, cpu_seconds, wrk
from bench.world import World, body, edge_argv, free_port, wait_ready

OBJECTS = 6000
BUCKET = "bench"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",  # moto accepts any; test data
    "AWS_DEFAULT_REGION": "us-east-1",
}
LUA = """counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/i/alice/o" .. counter .. ".png")
end
"""


@dataclass
class ColdResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    edge_cpu_us: float
    get_object_cpu_us: float
    presigned_get_cpu_us: float


def start_moto(world: World) -> str:
    port = free_port()
    env = {**os.environ, **CREDENTIALS}
    argv = [sys.executable, "-m", "moto.server", "-p", str(port)]
    proc = world.start(argv, env=env, core=LOAD_CORE)
    wait_ready(port, "/", proc=proc)  # moto lists buckets at /
    return f"http://127.0.0.1:{port}"


def populate(endpoint: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
    client.create_bucket(Bucket=BUCKET)
    data = body(3)
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda n: client.put_object(Bucket=BUCKET, Key=f"public/alice/o{n}.png", Body=data),
                range(1, OBJECTS + 1),
            )
        )


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


def run(world: World, *, seconds: float) -> ColdResult:
    endpoint = start_moto(world)
    populate(endpoint)
    port = free_port()
    env = world.edge_env(
        EDGE_STORAGE=f"s3://{BUCKET}", EDGE_S3_ENDPOINT_URL=endpoint, EDGE_ACCESS_LOG="off",
        **CREDENTIALS,
    )  # fmt: skip
    proc = world.start(edge_argv(port), env=env, core=SERVER_CORE)
    wait_ready(port, "/i/alice/o1.png", proc=proc)
    script = world.root / "distinct.lua"
    script.write_text(LUA)
    before = cpu_seconds(proc.pid)
    result = wrk(f"http://127.0.0.1:{port}", seconds, connections=8, script=str(script))
    after = cpu_seconds(proc.pid)
    if result.requests >= OBJECTS:
        raise SystemExit(f"cold misses ran past the {OBJECTS} objects: raise OBJECTS")
    edge_cpu = (sum(after) - sum(before)) / result.requests * 1e6
    client = [sys.executable, "-m", "bench.cold", endpoint, BUCKET, "1500"]
    out = subprocess.run(
        ["taskset", "-c", str(SERVER_CORE), *client],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **CREDENTIALS},
    ).stdout
    numbers = dict(re.findall(r"(\w+) ([\d.]+)", out))
    return ColdResult(
        requests=result.requests,
        rps=result.rps,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        non_2xx=result.non_2xx + result.errors,
        edge_cpu_us=edge_cpu,
        get_object_cpu_us=float(numbers["get_object"]),
        presigned_get_cpu_us=float(numbers["presigned_get"]),
    )


async def baseline(endpoint: str, bucket: str, count: int) -> dict[str, float]:
    """Client CPU per object: aiobotocore get_object + read, and presign + aiohttp GET."""
    import aiohttp
    from aiobotocore.session import get_session

    keys = [f"public/alice/o{n}.png" for n in range(1, count + 1)]
    results: dict[str, float] = {}
    session = get_session()
    async with session.create_client("s3", endpoint_url=endpoint, **_boto_credentials()) as s3:
        await _read_all(s3, bucket, keys[:50])  # warm: connections, endpoint resolution
        started = time.process_time()
        await _read_all(s3, bucket, keys)
        results["get_object"] = (time.process_time() - started) / count * 1e6
        async with aiohttp.ClientSession() as http:

            async def fetch(key: str) -> None:
                url = await s3.generate_presigned_url(
                    "get_object", Params={"Bucket": bucket, "Key": key}
                )
                async with http.get(url) as reply:
                    await reply.read()

            await _gather(fetch, keys[:50])
            started = time.process_time()
            await _gather(fetch, keys)
            results["presigned_get"] = (time.process_time() - started) / count * 1e6
    return results


async def _read_all(s3: Any, bucket: str, keys: list[str]) -> None:
    async def one(key: str) -> None:
        reply = await s3.get_object(Bucket=bucket, Key=key)
        async with reply["Body"] as stream:
            await stream.read()

    await _gather(one, keys)


async def _gather(func: Any, keys: list[str], concurrency: int = 8) -> None:
    queue = list(reversed(keys))

    async def worker() -> None:
        while queue:
            await func(queue.pop())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


if __name__ == "__main__":
    import uvloop

    found = uvloop.run(baseline(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    for name, value in found.items():
        print(f"{name} {value:.1f}")
