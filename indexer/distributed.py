"""`shoplens index --ray ADDRESS`: the per-row work of a run (image reading, validation, decoding, preprocessing,
printed-text reading, encoding) on a Ray cluster, through Ray Data `map_batches` with a fixed pool of actors that
each load the encoder once.

This is an executor for `indexer.ingest.Indexer`, not a second pipeline: the driver still parses the catalog
(duplicate ids are a whole-file check), looks up what is stored, decides what needs encoding, writes every batch
in one transaction with its row outcomes, and publishes once. The actors only turn a batch of rows into its
`Encoded` result. Their vectors travel back through Ray's object store and the driver writes them: actors
need no database access, and one writer keeps product keys and row outcomes exactly as a local run makes them.
Nodes on other machines need the same ShopLens install and model cache, and the catalog's images at the same
paths (a shared file system or object store mount). The store is PostgreSQL when the nodes are separate machines
(the driver may run on any node, e.g. as a Ray job on the head, and the serving machines read the same store);
SQLite is for `--ray local` on one machine.

Faults: Ray restarts an actor that dies and retries its batch (Ray Data's actor defaults: `max_restarts=-1`,
`max_task_retries=-1`); a batch is written only once its result is back, so a worker killed mid-batch loses and
duplicates nothing. A killed driver is an interrupted run like any other: the rerun skips what was committed.
"""
from __future__ import annotations

import itertools
import logging
import os
import pickle
import re
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from indexer.errors import BadInput, ClusterUnavailable, ShopLensError, WeightsUnavailable
from indexer.ingest import Batch, Encoded, RowWork, WorkSpec

log = logging.getLogger(__name__)

# Batches per Ray Dataset: the driver looks up stored hashes for a window, then streams its results. Each window
# starts the actor pool again (a model load per actor, a few seconds), so a window gives every actor at least
# BATCHES_PER_ACTOR batches (~1 minute of work at 32 rows a batch) and at least WINDOW_BATCHES in all, while the
# driver never holds more than one window of rows.
WINDOW_BATCHES = 256
BATCHES_PER_ACTOR = 64
REACH_TIMEOUT_S = 5.0
_HINT = "Start it (`ray start --head`), check the address, or use --ray local."
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024  # `--ray local`: results are small (2 vectors a row) and streamed
_ADDRESS = re.compile(r"^(local|auto|ray://[^\s:/]+:\d+|[^\s:/]+:\d+)$")
# Loggers whose INFO/WARNING lines are Ray's own chatter for this command ("token authentication is enabled",
# "progress bars disabled", "dataset execution finished"): errors still show, and Ray's log files keep the rest.
_QUIET = ("ray", "ray.data", "ray._private.authentication.authentication_token_setup")


def check_address(address: str) -> str:
    """The address, if it is one `--ray` accepts: local, auto, ray://HOST:PORT or HOST:PORT (a GCS address)."""
    if not _ADDRESS.match(address.strip()):
        raise BadInput(f"--ray {address!r} is not a Ray address",
                       hint="Use local, auto, ray://HOST:PORT (Ray Client) or HOST:PORT (the head's GCS).")
    return address.strip()


def _quiet_ray(progress: bool) -> None:
    """Ray's own logs at WARNING and no Ray Data banners, so the CLI prints what `shoplens index` prints."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    from ray.data import DataContext

    for name in _QUIET:
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        for handler in logger.handlers:  # Ray Data's console handler is set to INFO by its own config
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.ERROR)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = progress
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.execution_options.preserve_order = True  # results come back in catalog order, as local runs write them


def _check_reachable(address: str) -> None:
    """Connect to the head's port first (`REACH_TIMEOUT_S`): Ray itself retries an absent head for minutes."""
    if address == "local":
        return
    target = address.removeprefix("ray://")
    if address == "auto":  # $RAY_ADDRESS, else the cluster the last `ray start` on this machine recorded
        from ray._private.services import canonicalize_bootstrap_address

        try:
            target = canonicalize_bootstrap_address("auto") or ""
        except Exception as exc:  # ConnectionError: no cluster recorded
            raise ClusterUnavailable(f"cannot reach the Ray cluster at auto: {_reason(exc)}",
                                     hint=_HINT) from None
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S).close()
    except (OSError, ValueError) as exc:
        where = address if target in address else f"{address} ({target})"
        raise ClusterUnavailable(f"cannot reach the Ray cluster at {where}: "
                                 f"{getattr(exc, 'strerror', None) or _reason(exc)}", hint=_HINT) from None


def _reason(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


@contextmanager
def ray_cluster(address: str, *, cpus: int | None, progress: bool) -> Iterator[None]:
    """Connected to the Ray cluster at `address` (`local`: a Ray instance of `cpus` CPUs started here and stopped
    at the end) for the block; a cluster that cannot be reached is one `ClusterUnavailable` line."""
    address = check_address(address)
    import ray

    _quiet_ray(progress)
    _check_reachable(address)
    try:
        if address == "local":
            ray.init(num_cpus=cpus or os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING,
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
    except Exception as exc:  # ConnectionError, TimeoutError, RuntimeError, grpc errors: all mean "not there"
        ray.shutdown()
        raise ClusterUnavailable(f"cannot reach the Ray cluster at {address}: {_reason(exc)}", hint=_HINT) from None
    try:
        yield
    finally:
        ray.shutdown()


def cluster_actors(requested: int, actor_cpus: int) -> int:
    """How many actors to run: `requested`, else as many as the connected cluster's CPUs hold."""
    if requested:
        return requested
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1) // actor_cpus))


class BatchEncoder:
    """A Ray Data actor: loads the encoder once, then turns pickled `Batch`es into pickled `Encoded` results."""

    def __init__(self, spec: WorkSpec, threads: int) -> None:
        import torch

        from indexer.model.encoder import load_encoder

        for name in ("indexer", "ray"):  # the driver logs the run; an actor speaks up only for a problem
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # the text tower's "Loading weights" bar, once per actor
        except ImportError:
            pass
        torch.set_num_threads(threads)
        encoder = load_encoder(spec.model_spec, cache_dir=spec.cache_dir, runtime=spec.runtime)
        if encoder.name != spec.model_name:
            raise WeightsUnavailable(f"a Ray worker loads model {encoder.name}, the driver {spec.model_name}",
                                     hint="Install the same ShopLens and model cache on every node.")
        self.work = RowWork(spec, encoder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = []
        for payload in batch["batch"]:
            rows, hashes = pickle.loads(payload)
            prepared = [self.work.prepare(row, hashes.get((row.id, "image"))) for row in rows]
            results.append(pickle.dumps(self.work.encode(prepared, hashes), protocol=pickle.HIGHEST_PROTOCOL))
        return {"index": batch["index"], "encoded": np.array(results, dtype=object)}


def _user_error(exc: BaseException) -> ShopLensError | None:
    """The ShopLensError an actor raised, found in the chain of errors Ray wrapped it in."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ShopLensError):
            return exc
        exc = getattr(exc, "cause", None) or exc.__cause__
    return None


class RayExecutor:
    """`indexer.ingest.Executor` on the connected Ray cluster: one Ray Dataset per window of batches, one
    `map_batches` call over it with `actors` `BatchEncoder`s of `actor_cpus` CPUs each."""

    def __init__(self, actors: int, actor_cpus: int = 1) -> None:
        self.actors, self.actor_cpus = actors, actor_cpus
        self.window = max(WINDOW_BATCHES, BATCHES_PER_ACTOR * actors)

    def run(self, work: RowWork, batches: Iterable[Batch]) -> Iterator[tuple[Batch, Encoded]]:
        spec = work.spec
        batches = iter(batches)
        while window := list(itertools.islice(batches, self.window)):
            for batch, encoded in self._run_window(spec, window):
                # Images read in this window are not read again by the next one's actors.
                spec = replace(spec, read_hashes=spec.read_hashes | {p.image_hash for p in encoded.prepared
                                                                     if p.reading})
                yield batch, encoded

    def _run_window(self, spec: WorkSpec, window: list[Batch]) -> Iterator[tuple[Batch, Encoded]]:
        import ray

        items = [{"index": i, "batch": pickle.dumps((b.rows, b.hashes), protocol=pickle.HIGHEST_PROTOCOL)}
                 for i, b in enumerate(window)]
        dataset = ray.data.from_items(items).map_batches(
            BatchEncoder, fn_constructor_kwargs={"spec": spec, "threads": self.actor_cpus}, batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(self.actors, len(window))), num_cpus=self.actor_cpus,
            batch_format="numpy")
        try:
            for expected, row in enumerate(dataset.iter_rows()):
                if row["index"] != expected:
                    raise ClusterUnavailable(f"Ray returned batch {row['index']} where {expected} was due")
                yield window[expected], pickle.loads(row["encoded"])
        except ShopLensError:
            raise
        except Exception as exc:  # a RayError (or Ray Data's wrapper of one): the run stops, the rerun resumes
            user = _user_error(exc)
            if user is not None:
                raise user from None
            raise ClusterUnavailable(f"the Ray run failed: {_reason(exc)}",
                                     hint="Committed batches are kept: run the same command again to continue.") \
                from None
