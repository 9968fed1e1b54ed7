"""Run Matrix's peer-to-peer agent framework on one scenario config, the way its own
``p2p_agents`` entry point does, with Ray started in this process.

Runs inside the Matrix venv only (``benchmarks/matrix/setup_venv.sh``)::

    benchmarks/matrix/.venv/bin/python benchmarks/matrix/run_matrix.py \
        benchmarks/matrix/matrix_coral.yaml resources.llm.base_url=http://127.0.0.1:PORT/v1 \
        dataset.data_files=ROWS.jsonl output.path=OUT.jsonl --timings TIMINGS.json

Differences from ``python -m matrix.agents.p2p_agents --config-name ...`` (kept to what
the benchmark needs): the config is one self-contained YAML read with OmegaConf (plus
``key=value`` overrides) instead of Hydra's config search, and Ray is a local cluster
started here (``ray.init``) instead of a ``matrix start_cluster`` cluster, so that every
Ray process is a child of this one and the driver's /proc sampler counts its CPU and
memory. The shipped actor resources add up to 5.5 CPUs: Ray advertises ``--num-cpus``
(default 8) so the actors can be placed on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import ray
from matrix.agents.p2p_agents import P2PAgentFramework
from omegaconf import OmegaConf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("overrides", nargs="*", help="key=value (OmegaConf dot-list)")
    parser.add_argument("--num-cpus", type=int, default=8, help="CPUs the Ray node advertises")
    parser.add_argument("--timings", type=Path, help="write start-up phases and metrics here")
    args = parser.parse_args()
    started = time.time()
    cfg = OmegaConf.merge(OmegaConf.load(args.config), OmegaConf.from_dotlist(args.overrides))
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=True)
    ray_ready = time.time()
    try:
        metrics = asyncio.run(P2PAgentFramework(0, cfg).run_simulation())  # type: ignore[arg-type]
    finally:
        ray.shutdown()
    if args.timings:
        timings = {
            "started": started,
            "ray_ready": ray_ready,
            "finished": time.time(),
            "matrix_metrics": metrics,
        }
        args.timings.write_text(json.dumps(timings, indent=2, default=str))


if __name__ == "__main__":
    main()
