"""tuner: runs a TFX module's `tuner_fn(fn_args)` and the KerasTuner search it returns.

As TFX's Tuner: `tuner_fn` gets an FnArgs like the trainer's (train/eval files, schema,
transform graph, steps, custom_config) plus `working_dir` for the trials (a scratch folder
here, deleted after the search), returns `TunerFnResult(tuner, fit_kwargs)`, and
`tuner.search(**fit_kwargs)` runs under the trainer's strategy rules (`strategy`; every trial
runs on one machine, so multi_worker is not offered). The best trial's
`HyperParameters.get_config()` is published in TFX's layout (`hyperparameters`), with a
Markdown table of the trials for the KFP UI.

Several machines (`workers > 1`, or a TF_CONFIG listing several tasks) run trials in parallel,
as TFX's distributed Tuner does (`num_parallel_trials` on Cloud AI Platform / Vertex): KerasTuner's
distributed tuning, one trial per machine at a time. The chief's process hosts the oracle
(KERASTUNER_TUNER_ID=chief, on the chief's TF_CONFIG port) and starts a child process that runs
trials beside the other machines'; when the oracle ends, the chief, which holds every trial,
publishes the outputs. A KerasTuner environment already set (KERASTUNER_ORACLE_IP, ...) wins.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tfkfp.containers import events
from tfkfp.containers.model import user_module
from tfkfp.containers.runtime import KERAS_FLAVOURS, InputError, log, select_keras
from tfkfp.containers.store.publish import outputs
from tfkfp.containers.train import hyperparameters as hp_layout
from tfkfp.containers.train import launch
from tfkfp.containers.train import strategy as strategies
from tfkfp.containers.train.fn_args import common_fn_args
from tfkfp.containers.train.launch import LaunchResult
from tfkfp.containers.views.markdown import code, escape

# The heavy libraries this stage loads (tfkfp.warm: a task waits for a worker holding them).
LIBRARIES: tuple[str, ...] = ("tensorflow",)

STRATEGIES = ("auto", "mirrored", "default")
# The values each enumerated parameter takes: compiled pipelines list them (KFP's `literals`).
CHOICES: dict[str, tuple[str, ...]] = {
    "keras": KERAS_FLAVOURS,
    "strategy": STRATEGIES,
    "backend": launch.BACKENDS,
}


@dataclass(frozen=True)
class Trial:
    """One KerasTuner trial as the trials table shows it."""

    trial_id: str
    status: str
    values: dict[str, Any]
    score: float | None
    seconds: float | None


@dataclass
class TunerResult:
    """What the tuner stage found; the component records it as metadata and Metrics."""

    objective: str
    direction: str
    best_score: float
    best_values: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)
    max_trials: int | None = None
    strategy: str = "default"
    replicas: int = 1
    search_seconds: float = 0.0

    @property
    def completed(self) -> int:
        return sum(t.status == "COMPLETED" for t in self.trials)

    def to_json(self) -> str:
        """The result as a launched job's chief writes it for the launcher."""
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> TunerResult:
        """What `to_json` wrote (its trials as Trial again)."""
        fields = json.loads(text)
        trials = [Trial(**t) for t in fields.pop("trials", [])]
        return cls(**fields, trials=trials)


def _load_tuner_fn(module_file: str):
    module = user_module.load(module_file)
    tuner_fn = getattr(module, "tuner_fn", None)
    if not callable(tuner_fn):
        has = "run_fn()" if callable(getattr(module, "run_fn", None)) else "neither"
        raise InputError(
            f"module_file: {module_file} defines no function tuner_fn(fn_args) (has {has}); "
            "the tuner needs TFX's tuner_fn returning TunerFnResult(tuner, fit_kwargs)"
        )
    return tuner_fn


def _checked_result(result: Any):
    """(tuner, fit_kwargs) from what tuner_fn returned, or an InputError saying what it was."""
    tuner = getattr(result, "tuner", None)
    fit_kwargs = getattr(result, "fit_kwargs", None)
    if (
        not callable(getattr(tuner, "search", None))
        or getattr(tuner, "oracle", None) is None
        or not isinstance(fit_kwargs, dict)
    ):
        raise InputError(
            f"tuner_fn: returned {type(result).__name__} {str(result)[:80]!r}; expected "
            "TunerFnResult(tuner=<a KerasTuner tuner>, fit_kwargs=<dict for tuner.search>)"
        )
    max_trials = getattr(tuner.oracle, "max_trials", None)
    if max_trials is not None and (
        isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1
    ):
        # KerasTuner reads 0 as "no limit" and searches the whole space: never what 0 meant.
        raise InputError(
            f"tuner_fn: the tuner's max_trials is {max_trials!r}; expected a whole number of "
            "at least 1 (or None: no limit, the whole search space)"
        )
    return tuner, fit_kwargs


def _objective(oracle) -> tuple[str, str]:
    objective = oracle.objective
    return str(getattr(objective, "name", objective)), str(getattr(objective, "direction", ""))


def _progress(tuner, started: dict[str, float], seconds: dict[str, float]) -> None:
    """A report at the end of every trial: its number, score, best so far, values, time."""
    oracle = tuner.oracle
    name, _ = _objective(oracle)
    begin, end = tuner.on_trial_begin, tuner.on_trial_end

    def on_trial_begin(trial):
        started[trial.trial_id] = time.perf_counter()
        return begin(trial)

    def on_trial_end(trial):
        result = end(trial)
        took = time.perf_counter() - started.get(trial.trial_id, time.perf_counter())
        seconds[trial.trial_id] = round(took, 2)
        known = getattr(oracle, "trials", None)  # a chief oracle's client has none
        done = known.get(trial.trial_id, trial) if known is not None else trial
        number = len(known) if known is not None else int(trial.trial_id) + 1
        best = _best(oracle)
        max_trials = getattr(oracle, "max_trials", None)
        best_so_far = _fmt(best.score) if best else "none"
        events.progress(
            "tuner",
            "trial %d/%s %s: %s %s in %.1f s (best so far %s), %s",
            number,
            max_trials or "?",
            done.status,
            name,
            _fmt(done.score),
            took,
            best_so_far,
            json.dumps(done.hyperparameters.values, default=str),
            completed=number,
            total=max_trials,
            detail=f"trial {number}/{max_trials or '?'}  {name} "
            f"{_fmt(done.score)} (best so far {best_so_far})",
        )
        return result

    tuner.on_trial_begin = on_trial_begin
    tuner.on_trial_end = on_trial_end


def _best(oracle):
    """The best completed trial, or None (KerasTuner also ranks failed trials, without a score)."""
    known = getattr(oracle, "trials", None)  # a chief oracle's client asks the chief
    ranked = oracle.get_best_trials(len(known) if known else oracle.max_trials or 100)
    return next((t for t in ranked if t.status == "COMPLETED" and t.score is not None), None)


def _fmt(score) -> str:
    return "-" if score is None else f"{float(score):.4g}"


def _trials(oracle, seconds: dict[str, float]) -> list[Trial]:
    return [
        Trial(
            trial_id=str(trial_id),
            status=str(trial.status),
            values=dict(trial.hyperparameters.values),
            score=None if trial.score is None else float(trial.score),
            seconds=seconds.get(trial_id),
        )
        for trial_id, trial in oracle.trials.items()
    ]


def render_markdown(result: TunerResult) -> str:
    """The trials table (best first marked) for the KFP UI's Markdown viewer."""
    names = sorted({name for trial in result.trials for name in trial.values})
    objective = escape(result.objective)
    lines = [
        f"# Tuning: {objective} ({escape(result.direction or 'objective')})",
        "",
        f"Best {objective}: **{_fmt(result.best_score)}** with "
        f"{code(json.dumps(result.best_values, default=str))}; {result.completed} of "
        f"{len(result.trials)} trials completed (max\\_trials {result.max_trials or '-'}), "
        f"{result.search_seconds:.0f} s under {escape(result.strategy)} "
        f"({result.replicas} replica(s)).",
        "",
        "| trial | status | "
        + " | ".join(escape(n) for n in names)
        + f" | {objective} | seconds |",
        "|---|---|" + "---|" * len(names) + "---|---|",
    ]
    best = next(
        (t.trial_id for t in result.trials if t.score == result.best_score and t.score is not None),
        None,
    )
    for trial in result.trials:
        mark = " (best)" if trial.trial_id == best else ""
        cells = [escape(trial.values.get(name, "")) for name in names]
        seconds = "-" if trial.seconds is None else f"{trial.seconds:.1f}"
        lines.append(
            f"| {escape(trial.trial_id)}{mark} | {escape(trial.status)} | "
            + " | ".join(cells)
            + f" | {_fmt(trial.score)} | {seconds} |"
        )
    return "\n".join(lines) + "\n"


def _search(
    tuner, fit_kwargs: dict[str, Any], seconds: dict[str, float], role: str = "alone"
) -> float:
    """Runs the search; a search with no completed trial is the module's error, in one line.

    A `trials` process (one machine of several) leaves that verdict to the chief's oracle.
    """
    _progress(tuner, {}, seconds)
    log.info(
        "tuner: search with %s (max_trials %s), objective %s",
        type(tuner).__name__,
        getattr(tuner.oracle, "max_trials", None),
        _objective(tuner.oracle)[0],
    )
    started = time.perf_counter()
    try:
        tuner.search(**fit_kwargs)
    except RuntimeError as err:
        # KerasTuner's "Number of consecutive failures exceeded the limit"; others propagate.
        if "consecutive failures" not in str(err) or role == "trials" or _best(tuner.oracle):
            raise
        log.error("tuner: the last failed trial:\n%s", str(err))
    took = time.perf_counter() - started
    if role != "trials" and _best(tuner.oracle) is None:
        failed = [t for t in tuner.oracle.trials.values() if t.status != "COMPLETED"]
        reason = ""
        if failed and failed[-1].message:
            reason = "; last error: " + failed[-1].message.strip().splitlines()[-1][:160]
        raise InputError(
            f"tuner_fn: the search completed no trial ({len(tuner.oracle.trials)} ran, "
            f"{len(failed)} failed{reason})"
        )
    return took


# The outputs a trials-only process gets (scratch paths: it publishes nothing).
_OUTPUTS = ("best_hyperparameters", "trials", "trials_chart")
# A trials process beside the chief's oracle: the same run(), another KerasTuner identity.
_TRIALS_CHILD = (
    "import json, sys\n"
    "from tfkfp.containers import tuner\n"
    "from tfkfp.containers.runtime import entrypoint\n"
    "entrypoint(tuner.run, **json.loads(sys.argv[1]))\n"
)


def _parallel_role() -> tuple[str, int]:
    """This process's part when trials run on several machines, from TF_CONFIG.

    Sets KerasTuner's environment (KERASTUNER_ORACLE_IP / _PORT / _TUNER_ID) and removes
    TF_CONFIG: every trial trains on one machine. A KerasTuner environment already set wins.

    Returns:
        ("alone" | "oracle" | "trials", the machines that run trials).
    """
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "")
    if os.environ.get("KERASTUNER_ORACLE_IP") and tuner_id:
        # KerasTuner treats every ID containing "chief" as the oracle's
        return ("oracle" if "chief" in tuner_id else "trials"), 1
    machines, is_chief, task = strategies.cluster()
    if machines == 1:
        return "alone", 1
    cluster = json.loads(os.environ.pop("TF_CONFIG"))["cluster"]
    chief = (cluster.get("chief") or cluster.get("master") or cluster["worker"])[0]
    host, port = chief.rsplit(":", 1)
    os.environ["KERASTUNER_ORACLE_PORT"] = port  # the chief's TF port: no TF server uses it
    if is_chief:
        os.environ.update(KERASTUNER_ORACLE_IP="0.0.0.0", KERASTUNER_TUNER_ID="chief")
    else:
        ident = f"tfkfp-{task.replace(':', '-')}"
        os.environ.update(KERASTUNER_ORACLE_IP=host, KERASTUNER_TUNER_ID=ident)
    log.info(
        "tuner: %d machines run trials in parallel; %s is %s (oracle at %s:%s)",
        machines,
        task,
        "the chief: the oracle, and trials in a child process" if is_chief else "running trials",
        host,
        port,
    )
    return ("oracle" if is_chief else "trials"), machines


def _start_trials_child(kwargs: dict[str, Any]) -> subprocess.Popen:
    """The chief machine's own trials, in a child process (the oracle blocks this one).

    Started before this process loads TensorFlow and the module, so the chief's trials begin
    with the other machines'; it waits for the oracle (KerasTuner's client waits until ready).
    """
    scratch = tempfile.mkdtemp(prefix="tfkfp-tuner-trials-")
    args = {**kwargs, **{key: os.path.join(scratch, key) for key in _OUTPUTS}}
    env = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_TUNER_ID": "tfkfp-main"}
    proc = subprocess.Popen([sys.executable, "-c", _TRIALS_CHILD, json.dumps(args)], env=env)
    proc.stopping = False  # set when this process ends it (its own failure)

    def watch() -> None:
        # A dead trials process would leave the oracle waiting for it forever.
        code = proc.wait()
        shutil.rmtree(scratch, ignore_errors=True)
        if code != 0 and not proc.stopping:
            print(f"error: tuner: the chief's trials process exited with {code}", flush=True)
            os._exit(2 if code == 2 else 1)

    threading.Thread(target=watch, daemon=True).start()
    return proc


def _wait_for_every_machine(oracle, machines: int) -> None:
    """Keeps KerasTuner's oracle serving until every machine asked it for a trial.

    Its server stops once no tuner it has seen is running; a machine that starts after the
    others took the last trial would then wait an hour for an oracle that is gone.
    """
    from keras_tuner.src.distribute import oracle_chief

    seen: set[str] = set()
    create_trial = oracle.create_trial

    def recording(tuner_id):
        seen.add(tuner_id)
        return create_trial(tuner_id)

    oracle.create_trial = recording
    exit_chief = oracle_chief.exit_chief
    bound, started = _worker_wait(), time.monotonic()

    def every_machine_seen(o) -> bool:
        if len(seen) >= machines:
            return exit_chief(o)
        # a machine TF_CONFIG lists that never starts would keep the oracle up until killed
        if time.monotonic() - started > bound:
            raise InputError(
                f"TF_CONFIG: lists {machines} machines, {len(seen)} asked the oracle for a "
                f"trial within {bound:g} s ({WORKER_WAIT_ENV} sets the bound): did every "
                "worker start?"
            )
        return False

    oracle_chief.exit_chief = every_machine_seen


WORKER_WAIT_ENV = "TFKFP_WORKER_WAIT"


def _worker_wait() -> float:
    """Seconds the oracle waits for every machine TF_CONFIG lists (TFKFP_WORKER_WAIT, 600).

    KerasTuner's oracle checks every 20 s once the trials are done, so the wait can exceed
    the bound by that much.
    """
    text = os.environ.get(WORKER_WAIT_ENV, "")
    try:
        value = float(text) if text else 600.0
    except ValueError:
        value = -1.0
    if not value > 0:
        raise InputError(f"{WORKER_WAIT_ENV}: expected seconds above 0, got {text!r}")
    return value


def run(
    examples: str,
    schema: str,
    module_file: str,
    best_hyperparameters: str,
    trials: str,
    trials_chart: str,
    transform_graph: str | None = None,
    train_steps: int = 1000,
    eval_steps: int = 100,
    custom_config: dict[str, Any] | None = None,
    keras: str = "tf_keras",
    strategy: str = "auto",
    cpu_replicas: int = 0,
    workers: int = 1,
    backend: str = "jobset",
    gpus_per_node: int = 0,
    task_config: dict[str, Any] | None = None,
) -> TunerResult | LaunchResult[TunerResult] | None:
    """Calls tuner_fn, runs the search, publishes the best hyperparameters and the trials table.

    Args:
        examples: Examples to tune on (transformed ones when a transform graph is given).
        schema: Raw schema artifact (`fn_args.schema_path`).
        module_file: Path, gs:// or s3:// URI or dotted module name defining `tuner_fn(fn_args)`.
        best_hyperparameters: Output folder: `best_hyperparameters.txt` (TFX's layout).
        trials: Output file: the Markdown trials table.
        trials_chart: Output file: an HTML page of each trial's score, the best marked.
        transform_graph: Transform graph artifact (`fn_args.transform_graph_path`).
        train_steps: `fn_args.train_steps` per trial; 0 means None, as in TFX.
        eval_steps: `fn_args.eval_steps` per trial; 0 means None, as in TFX.
        custom_config: `fn_args.custom_config` (None when empty, as in TFX).
        keras: `tf_keras` (Keras 2, TFX's `tf.keras`) or `keras3`; KerasTuner uses the same.
        strategy: `auto` (MirroredStrategy over several GPUs, else default), `mirrored` or
            `default`; a module's own `tf.distribute.MirroredStrategy()` is this one.
        cpu_replicas: Splits the CPU into this many logical devices (tests of MirroredStrategy).
        workers: Machines running trials in parallel; more than 1 launches a job (the
            launcher, tfkfp.containers.train.launch) whose pods get artifact URIs.
        backend: The job for workers > 1: jobset, trainjob or vertex.
        gpus_per_node: GPUs of each pod when workers > 1.
        task_config: KFP's TaskConfig passthrough (its fields as a dict), applied to every
            launched pod when workers > 1; refused with backend vertex.

    Returns:
        The search's result; a LaunchResult from a launcher; None from a machine that only
        ran trials (the chief publishes).
    """
    launch.check(workers, backend, gpus_per_node, task_config)  # refused even when this tunes
    # Named one by one: the pods' (and the chief's trials process's) run() gets them as JSON.
    kwargs = {
        "examples": examples,
        "schema": schema,
        "module_file": module_file,
        "best_hyperparameters": best_hyperparameters,
        "trials": trials,
        "trials_chart": trials_chart,
        "transform_graph": transform_graph,
        "train_steps": train_steps,
        "eval_steps": eval_steps,
        "custom_config": custom_config,
        "keras": keras,
        "strategy": strategy,
        "cpu_replicas": cpu_replicas,
    }
    if workers != 1:
        return launch.launch(
            "tuner", workers, backend, kwargs, TunerResult, gpus_per_node, task_config=task_config
        )
    select_keras(keras)  # before anything (the user module included) imports TensorFlow
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    strategies.check(strategy, cpu_replicas, STRATEGIES)
    role, machines = _parallel_role()
    fn_args = common_fn_args(
        examples, schema, transform_graph, train_steps, eval_steps, custom_config
    )
    child = _start_trials_child(kwargs) if role == "oracle" else None
    try:
        out = {key: kwargs[key] for key in _OUTPUTS}
        return _tune(fn_args, module_file, strategy, cpu_replicas, role, machines, child, **out)
    except BaseException:
        if child is not None and child.poll() is None:
            child.stopping = True
            child.terminate()
        raise


def _tune(
    fn_args,
    module_file: str,
    strategy: str,
    cpu_replicas: int,
    role: str,
    machines: int,
    child: subprocess.Popen | None,
    best_hyperparameters: str,
    trials: str,
    trials_chart: str,
) -> TunerResult | None:
    """The search and its outputs, once the stage's inputs are checked (run's second half)."""

    import tensorflow as tf

    dist, strategy_name = strategies.make(strategy, cpu_replicas, 1, stage="tuner")
    hp_layout.keras_tuner()  # before the module: its `import keras_tuner` gets this one
    fn_args.strategy = dist
    fn_args.working_dir = tempfile.mkdtemp(prefix="tfkfp-tuner-")
    seconds: dict[str, float] = {}
    try:
        adopting = {"stage": "tuner", "fn": "tuner_fn"}
        with user_module.keras_names(), strategies.adopted(tf, dist, strategy_name, **adopting):
            tuner_fn = _load_tuner_fn(module_file)
            tuner, fit_kwargs = _checked_result(tuner_fn(fn_args))
        # KerasTuner builds each trial's model in its own distribution_strategy scope (and
        # clears the Keras session between trials, which would drop an outer scope).
        default = dist is tf.distribute.get_strategy()
        if not default and getattr(tuner, "distribution_strategy", False) is None:
            tuner.distribution_strategy = dist
        with (
            user_module.keras_names(),
            strategies.adopted(tf, dist, strategy_name, scope=False, **adopting),
        ):
            if role == "oracle":
                _wait_for_every_machine(tuner.oracle, machines)
            search_seconds = _search(tuner, fit_kwargs, seconds, role)
            if child is not None:
                child.wait()
        if role == "trials":
            log.info("tuner: this machine's trials are done; the chief publishes the outputs")
            return None
        oracle = tuner.oracle
        best_trial = _best(oracle)
        config = best_trial.hyperparameters.get_config()  # what TFX writes
        objective, direction = _objective(oracle)
        result = TunerResult(
            objective=objective,
            direction=direction,
            best_score=float(best_trial.score),
            best_values=dict(best_trial.hyperparameters.values),
            trials=_trials(oracle, seconds),
            max_trials=getattr(oracle, "max_trials", None),
            strategy=strategy_name,
            replicas=int(dist.num_replicas_in_sync),
            search_seconds=round(search_seconds, 2),
        )
        from dataclasses import asdict

        from tfkfp.containers.views import charts

        page = charts.tuner_trials([asdict(t) for t in result.trials], objective, direction)
        with outputs() as out:  # all three or none
            staging = out.folder(best_hyperparameters, "best_hyperparameters")
            hp_layout.write(staging, config)
            out.file(trials, render_markdown(result), "trials")
            out.file(trials_chart, page, "trials_chart")
    finally:
        shutil.rmtree(fn_args.working_dir, ignore_errors=True)
    events.result(
        "tuner",
        "best %s %s with %s; %d of %d trial(s) completed; written to %s",
        objective,
        _fmt(result.best_score),
        json.dumps(result.best_values, default=str),
        result.completed,
        len(result.trials),
        best_hyperparameters,
        summary=f"best {objective} {_fmt(result.best_score)}, "
        f"{result.completed} of {len(result.trials)} trial(s) completed",
        best_score=result.best_score,
        best_values=result.best_values,
        completed=result.completed,
        trials=len(result.trials),
    )
    return result
