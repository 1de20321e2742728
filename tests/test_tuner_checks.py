"""Decisions the tuner makes before a search: concurrency, shared storage, resources."""

import csv
import json
import pickle
from pathlib import Path

import pytest
from conftest import lr_searcher

from tune_nas.config.experiment import ExperimentSpec
from tune_nas.ray_tune import cluster as tuner
from tune_nas.ray_tune.callbacks import _error_reason


def test_concurrent_slots_follow_resources(monkeypatch):
    monkeypatch.setattr(tuner.ray, "is_initialized", lambda: True)
    monkeypatch.setattr(tuner.ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 1.0})
    assert tuner.concurrent_slots(ExperimentSpec(cpus_per_trial=1)) == 16
    assert tuner.concurrent_slots(ExperimentSpec(cpus_per_trial=2, gpus_per_trial=0.25)) == 4
    assert tuner.concurrent_slots(ExperimentSpec(cpus_per_trial=1, max_concurrent_trials=3)) == 3
    assert tuner.concurrent_slots(ExperimentSpec(cpus_per_trial=32)) == 1


def test_data_parallel_trials_reserve_every_workers_resources(monkeypatch):
    from tune_nas.ray_tune.run import trial_resources

    monkeypatch.setattr(tuner.ray, "is_initialized", lambda: True)
    monkeypatch.setattr(tuner.ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 4.0})
    assert trial_resources(ExperimentSpec(cpus_per_trial=2, workers_per_trial=3)) == {"cpu": 6, "gpu": 0}
    assert trial_resources(ExperimentSpec(cpus_per_trial=1, gpus_per_trial=1, workers_per_trial=2)) == {"cpu": 2, "gpu": 2}
    assert tuner.concurrent_slots(ExperimentSpec(cpus_per_trial=2, workers_per_trial=2)) == 4
    assert tuner.concurrent_slots(ExperimentSpec(cpus_per_trial=1, gpus_per_trial=1, workers_per_trial=2)) == 2


def test_a_data_parallel_trial_larger_than_any_node_is_refused(monkeypatch):
    monkeypatch.setattr(tuner.ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 4.0})
    monkeypatch.setattr(tuner, "autoscaling_limits", dict)
    monkeypatch.setattr(tuner.ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 8.0, "GPU": 2.0}},
                                                     {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 2.0}}])
    tuner.check_resources(ExperimentSpec(cpus_per_trial=4, workers_per_trial=2))  # fits one node
    with pytest.raises(tuner.ResourceError, match="--workers-per-trial 3: 3 x 1 GPU.*largest node has 2"):
        tuner.check_resources(ExperimentSpec(cpus_per_trial=1, gpus_per_trial=1, workers_per_trial=3))
    with pytest.raises(tuner.ResourceError, match="--workers-per-trial 4: 4 x 4 CPU"):
        tuner.check_resources(ExperimentSpec(cpus_per_trial=4, workers_per_trial=4))


def _nodes(n, same_host=False):
    return lambda: [{"Alive": True, "NodeManagerHostname": "h" if same_host else f"h{i}",
                     "NodeManagerAddress": "10.0.0.1" if same_host else f"10.0.0.{i}"}
                    for i in range(n)] + [{"Alive": False}]


def test_node_local_trials_dir_is_refused_on_a_multi_node_cluster(monkeypatch, tmp_path):
    monkeypatch.setattr(tuner.ray, "nodes", _nodes(2))
    monkeypatch.setattr(tuner, "filesystem_type", lambda p: "ext4")
    with pytest.raises(tuner.ResourceError, match="node-local ext4 filesystem.*2 nodes"):
        tuner.check_trials_dir_is_shared(tmp_path)
    monkeypatch.setattr(tuner, "filesystem_type", lambda p: "nfs4")
    tuner.check_trials_dir_is_shared(tmp_path)  # shared: accepted
    monkeypatch.setattr(tuner.ray, "nodes", _nodes(1))
    monkeypatch.setattr(tuner, "filesystem_type", lambda p: "ext4")
    tuner.check_trials_dir_is_shared(tmp_path)  # one node: anything goes
    monkeypatch.setattr(tuner.ray, "nodes", _nodes(3, same_host=True))
    tuner.check_trials_dir_is_shared(tmp_path)  # several nodes on this one machine


def test_filesystem_type_reads_the_mount_table():
    assert tuner.filesystem_type(Path("/proc/self")) == "proc"
    assert tuner.filesystem_type(Path("/no/such/dir/below")) == tuner.filesystem_type(Path("/"))


def test_gpu_trials_on_a_cluster_without_gpus_are_refused(monkeypatch):
    monkeypatch.setattr(tuner.ray, "cluster_resources", lambda: {"CPU": 8.0})
    monkeypatch.setattr(tuner, "autoscaling_limits", dict)
    with pytest.raises(tuner.ResourceError, match="--gpus-per-trial 1.*0 GPU"):
        tuner.check_resources(ExperimentSpec(gpus_per_trial=1))
    with pytest.raises(tuner.ResourceError, match="--cpus-per-trial 16"):
        tuner.check_resources(ExperimentSpec(cpus_per_trial=16))


def test_local_ray_keeps_token_authentication_on_and_its_dashboard_off():
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    assert tuner.os.environ.get("RAY_AUTH_MODE", "token") != "disabled"
    tuner.init_ray(None, num_cpus=1)
    try:
        assert is_token_auth_enabled()
        assert tuner.ray.get_runtime_context().get_node_id() is not None
        assert tuner.ray._private.worker.global_worker.node.address_info.get("webui_url") in (None, "")
    finally:
        tuner.shutdown()


def test_a_trial_error_that_cannot_be_read_is_reported_not_hidden():
    class Unreadable:
        def get_error(self):
            raise FileNotFoundError("error.txt")

    class Raised:
        def get_error(self):
            return RuntimeError("Traceback ...\nValueError: width must be positive")

    assert "error file could not be read (FileNotFoundError" in _error_reason(Unreadable())
    assert _error_reason(Raised()) == "ValueError: width must be positive"


OOM_TEXT = ("2 worker(s) were killed due to the node running low on memory. Memory on the node (IP: 10.0.0.1, "
            "ID: ab12) was 22.53GB used / 23.54GB limit (0.957085)\nOOM kill reason: Memory usage 24134991872B "
            "exceeded threshold\nTop 10 memory users: ...\nRefer to the documentation on how to address it.")


def test_a_trial_error_is_read_from_the_drivers_copy_before_it_reaches_storage(tmp_path):
    """Tune writes a trial's error.txt on the driver and copies it to storage later: a trial
    whose worker died a moment ago has no stored error yet (``get_error`` is None)."""
    error_file = tmp_path / "error.txt"
    error_file.write_text("Failure # 1 (occurred at 2026-12-03_15-38-24)\nTraceback ...\nValueError: first\n"
                          f"Failure # 2 (occurred at 2026-12-03_15-38-31)\n{OOM_TEXT}\n")

    class Killed:
        def __init__(self, path):
            self.error_file = path

        def get_error(self):
            return None

    reason = _error_reason(Killed(str(error_file)))
    assert reason == ("out of memory: Ray's memory monitor killed the trial's worker (2 worker(s) were killed due "
                      "to the node running low on memory. Memory on the node (IP: 10.0.0.1, ID: ab12) was 22.53GB "
                      "used / 23.54GB limit (0.957085))")
    error_file.write_text(f"Failure # 1 (occurred at 2026-12-03_15-38-24)\n{OOM_TEXT}\n"
                          "Failure # 2 (occurred at 2026-12-03_15-38-31)\nTraceback ...\nValueError: second\n")
    assert _error_reason(Killed(str(error_file))) == "ValueError: second"  # the latest failure's
    assert _error_reason(Killed(str(tmp_path / "absent.txt"))) == "the trial's worker failed without an error message"


class _TrackedActor:
    def __init__(self, events):
        self.actor_id, self.events = "actor-1", events

    def _on_error(self, actor, exception):
        self.events.append(("actor", exception))


class _TrackedTask:
    def __init__(self, actor):
        self._tracked_actor = actor

    def _on_error(self, actor, exception):
        actor.events.append(("task", exception))


class _Manager:
    """What ``RayActorManager._actor_task_failed`` touches of its manager."""

    def __init__(self):
        self._failed_actor_ids, self.cleaned = set(), []

    def _cleanup_actor(self, tracked_actor):
        self.cleaned.append(tracked_actor)


def test_a_worker_rays_memory_monitor_killed_reaches_tune_as_its_actors_death():
    from ray import exceptions
    from ray.air.execution._internal.actor_manager import RayActorManager

    from tune_nas.ray_tune.worker_deaths import as_actor_death, worker_deaths_fail_trials

    killed = exceptions.OutOfMemoryError("1 worker(s) were killed due to the node running low on memory.")
    original = RayActorManager._actor_task_failed
    with worker_deaths_fail_trials():
        events = []
        manager, actor = _Manager(), _TrackedActor(events)
        RayActorManager._actor_task_failed(manager, _TrackedTask(actor), killed)  # Ray's own code, adapted
    assert RayActorManager._actor_task_failed is original  # put back after the block
    assert [kind for kind, _ in events] == ["actor", "task"]
    assert manager._failed_actor_ids == {"actor-1"} and manager.cleaned == [actor]
    death = events[0][1]
    assert isinstance(death, exceptions.RayActorError) and death.__cause__ is killed
    assert str(death) == "OutOfMemoryError: 1 worker(s) were killed due to the node running low on memory."
    # a task's own error and an actor's death pass as they are
    task_error = exceptions.RayActorError(error_msg="the actor died")
    assert as_actor_death(task_error) is task_error
    other = ValueError("not Ray's")
    assert as_actor_death(other) is other


def test_a_rerun_of_a_trial_the_study_already_closed_leaves_the_study_as_told():
    """After a driver restart Ray re-runs trials that ended after its last snapshot (minutes
    old on object storage); their results must not reach the finished Optuna trial."""
    import optuna

    storage = optuna.storages.InMemoryStorage()
    searcher = lr_searcher(storage)
    config = searcher.suggest("ray-a")
    searcher.on_trial_result("ray-a", {"val/acc": 0.5, "epoch": 1})
    assert searcher.finish("ray-a", "PRUNED", None, {"epochs": 1}) == config["trial_number"]
    # what a restored searcher looks like (its state saved before the end was told): it holds
    # the trial's Optuna trial, not that it was told
    optuna_id, _ = searcher.told_trials.pop("ray-a")
    searcher._ot_trials["ray-a"] = optuna.trial.Trial(searcher._ot_study, optuna_id)
    searcher._completed_trials.discard("ray-a")
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # what a re-run hit before
        searcher.on_trial_result("ray-a", {"val/acc": 0.9, "epoch": 2})
    assert [t.number for t in searcher.skip_told().values()] == [config["trial_number"]]
    searcher.on_trial_result("ray-a", {"val/acc": 0.9, "epoch": 2})  # the re-run: ignored
    assert searcher.finish("ray-a", "COMPLETE", 0.9, {"epochs": 3}) is None
    (trial,) = optuna.load_study(study_name="s", storage=storage).trials
    assert trial.state.name == "PRUNED" and trial.intermediate_values == {1: 0.5}
    assert trial.user_attrs["epochs"] == 1


def test_a_driver_killed_between_telling_the_study_and_the_journal_records_what_the_study_was_told(tmp_path):
    """The study is told a trial's end before its record reaches the trials journal: a driver
    killed in between left a PRUNED Optuna trial that Ray re-ran to COMPLETE (CI saw summary.json
    say COMPLETE where the study said PRUNED). The resumed run records it as the study was told,
    with the epochs it had trained, and ignores the re-run."""
    from types import SimpleNamespace

    import optuna

    from tune_nas.objectives import Objective
    from tune_nas.ray_tune.callbacks import TrialEvents
    from tune_nas.record.bookkeeper import Bookkeeper
    from tune_nas.record.console import ProgressPrinter

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = lr_searcher(url)
    config = searcher.suggest("ray-a")
    saved = pickle.dumps(searcher)  # Ray's last snapshot: the trial is running
    keeper = Bookkeeper(tmp_path, Objective(), max_epochs=3)
    keeper.trial_started("ray-a", config["trial_number"], config)
    keeper.trial_result("ray-a", {"val/acc": 0.5, "epoch": 1})
    searcher.on_trial_result("ray-a", {"val/acc": 0.5, "epoch": 1})
    searcher.finish("ray-a", "PRUNED", None, {"epochs": 1, "checkpoint": "/ckpt/epoch1"})
    # ... killed here: no trial_ended, the journal holds its curve row only

    restored = pickle.loads(saved)
    restored.attach(url)
    keeper = Bookkeeper(tmp_path, Objective(), max_epochs=3)
    events = TrialEvents(keeper, restored, ProgressPrinter(Objective()))
    events.setup(total_num_samples=1)
    rerun = SimpleNamespace(trial_id="ray-a", config=config, status="RUNNING", checkpoint=None,
                            last_result={}, run_metadata=SimpleNamespace(
                                checkpoint_manager=SimpleNamespace(latest_checkpoint_result=None)))
    events.on_step_begin(0, [rerun])
    record = keeper.trials["ray-a"]
    assert (record.state, record.epochs, record.checkpoint) == ("PRUNED", 1, "/ckpt/epoch1")
    for epoch in (2, 3):  # the re-run continues to the full budget: ignored
        rerun.last_result = {"val/acc": 0.9, "epoch": epoch}
        events.on_trial_result(0, [rerun], rerun, rerun.last_result)
    events.on_trial_complete(0, [rerun], rerun)
    keeper.close()
    (trial,) = optuna.load_study(study_name="s", storage=url).trials
    assert trial.state.name == "PRUNED" and trial.intermediate_values == {1: 0.5}
    (saved_record,) = json.loads((tmp_path / "trials.json").read_text())
    assert (saved_record["state"], saved_record["epochs"]) == ("PRUNED", 1)
    with (tmp_path / "curves.csv").open() as f:
        assert [(r["epoch"], r["state"]) for r in csv.DictReader(f)] == [("1", "PRUNED")]


def test_a_restored_searcher_and_experiment_from_different_moments_are_reconciled():
    """Ray's experiment state and the searcher's are separate files of one snapshot: a driver
    killed between them resumes with one older than the other. A trial only the searcher knew
    never runs (FAIL "orphaned", its concurrency slot freed); a trial only Ray held is told
    when it ends; a trial asked after both snapshots is FAIL "orphaned"."""
    import optuna

    storage = optuna.storages.InMemoryStorage()
    searcher = lr_searcher(storage)
    numbers = {rid: searcher.suggest(rid)["trial_number"] for rid in ("ray-a", "ray-b", "ray-d")}
    del searcher._ot_trials["ray-d"]  # the searcher's state was saved before ray-d was asked
    asked_late = searcher._ot_study.ask().number  # asked after every snapshot
    held = {"ray-a": numbers["ray-a"], "ray-d": numbers["ray-d"]}  # Ray never saved ray-b
    assert searcher.reconcile(held) == ["ray-b"]
    states = {t.number: t for t in optuna.load_study(study_name="s", storage=storage).trials}
    for n in (numbers["ray-b"], asked_late):
        assert states[n].state.name == "FAIL" and states[n].user_attrs["error"].startswith("orphaned")
    assert states[numbers["ray-a"]].state.name == states[numbers["ray-d"]].state.name == "RUNNING"
    assert searcher.finish("ray-d", "COMPLETE", 0.9, {"epochs": 3}) == numbers["ray-d"]
    assert searcher.finish("ray-b", "COMPLETE", 0.9, {"epochs": 3}) is None  # never ran: stays FAIL
    assert searcher.reconcile(held | {"ray-b": numbers["ray-b"]}) == []  # nothing left to fix
    final = {t.number: t.state.name for t in optuna.load_study(study_name="s", storage=storage).trials}
    assert final == {numbers["ray-a"]: "RUNNING", numbers["ray-b"]: "FAIL",
                     numbers["ray-d"]: "COMPLETE", asked_late: "FAIL"}


def test_gpu_workers_an_autoscaler_may_still_add_count():
    """An autoscaling cluster with no GPU worker up yet takes GPU trials (they wait for the
    worker) when its autoscaler reports GPU node groups to Ray; without that, they are refused."""
    import ray
    from ray.core.generated import autoscaler_pb2
    from ray.experimental.internal_kv import _internal_kv_put

    spec = ExperimentSpec(gpus_per_trial=1, cpus_per_trial=4)
    tuner.init_ray(None, num_cpus=1)
    try:
        with pytest.raises(tuner.ResourceError, match="--gpus-per-trial 1: the Ray cluster has 0 GPU"):
            tuner.check_resources(spec)
        config = autoscaler_pb2.ClusterConfig(node_group_configs=[
            autoscaler_pb2.NodeGroupConfig(name="head", resources={"CPU": 1}, max_count=1),
            autoscaler_pb2.NodeGroupConfig(name="gpu", resources={"CPU": 8, "GPU": 1}, max_count=2)])
        _internal_kv_put(ray._raylet.GCS_AUTOSCALER_CLUSTER_CONFIG_KEY.encode(),
                         config.SerializeToString(),
                         namespace=ray._raylet.GCS_AUTOSCALER_STATE_NAMESPACE.encode())
        assert tuner.autoscaling_limits() == {"CPU": 17.0, "GPU": 2.0}
        tuner.check_resources(spec)  # accepted: up to 2 GPU workers may come
        too_many = r"--gpus-per-trial 3: the Ray cluster has 2 GPU\(s\) \(counting what its autoscaler may add\)"
        with pytest.raises(tuner.ResourceError, match=too_many):
            tuner.check_resources(ExperimentSpec(gpus_per_trial=3))
    finally:
        tuner.shutdown()


def test_the_saved_searcher_names_no_storage_and_reopens_the_study_where_it_is_now(tmp_path):
    """Ray pickles the searcher (tuner.pkl, searcher-state-*.pkl); with the study's SQLite
    path inside, a resume from another directory would open a file that is gone."""
    import shutil

    import optuna

    first = tmp_path / "first" / "optuna.db"
    first.parent.mkdir()
    url = f"sqlite:///{first}"
    searcher = lr_searcher(url)
    done, running = searcher.suggest("ray-a"), searcher.suggest("ray-b")
    searcher.finish("ray-a", "COMPLETE", 0.9, {"epochs": 3})
    saved = pickle.dumps(searcher)
    assert str(first).encode() not in saved  # only the study's name and trial ids

    moved = tmp_path / "elsewhere" / "optuna.db"
    moved.parent.mkdir()
    shutil.move(first, moved)
    shutil.rmtree(first.parent)
    restored = pickle.loads(saved)
    restored.attach(f"sqlite:///{moved}")
    restored.on_trial_result("ray-b", {"val/acc": 0.5, "epoch": 1})
    restored.finish("ray-b", "PRUNED", None, {"epochs": 1})
    trials = {t.number: t for t in optuna.load_study(study_name="s", storage=f"sqlite:///{moved}").trials}
    assert trials[done["trial_number"]].state.name == "COMPLETE"
    assert trials[running["trial_number"]].state.name == "PRUNED"
    assert trials[running["trial_number"]].intermediate_values == {1: 0.5}
    assert not first.parent.exists()  # nothing recreated at the old place


def test_a_searcher_pickled_before_its_study_exists_sets_it_up_where_the_study_is_now(tmp_path):
    """Ray's tuner.pkl pickles the searcher as the Tuner is built, before the study is set
    up; an experiment moved since must not reopen (or recreate) the first run's optuna.db."""
    import optuna
    from ray import tune

    from tune_nas.ray_tune.optuna_bridge import RecordingOptunaSearch
    from tune_nas.storage.study_db import open_storage

    first = tmp_path / "first" / "optuna.db"
    first.parent.mkdir()
    searcher = RecordingOptunaSearch(metric="val/acc", mode="max", study_name="s",
                                     storage=open_storage(f"sqlite:///{first}"),
                                     sampler=optuna.samplers.RandomSampler(seed=0))
    saved = pickle.dumps(searcher)
    assert str(first).encode() not in saved

    (tmp_path / "first").rename(tmp_path / "moved")
    moved = tmp_path / "moved" / "optuna.db"
    restored = pickle.loads(saved)
    restored.storage_url = f"sqlite:///{moved}"
    assert restored.set_search_properties("val/acc", "max", {"lr": tune.loguniform(1e-3, 1e-1)})
    config = restored.suggest("ray-a")
    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{moved}").trials
    assert [t.number for t in trials] == [config["trial_number"]]
    assert not (tmp_path / "first").exists()  # nothing recreated at the old place


def test_the_search_generator_forgets_created_trials_the_restored_experiment_lost():
    """A driver killed while Ray uploads its snapshot can leave a count of created trials
    that includes trials the restored experiment does not hold; they never run, so the
    generator counts only the trials it holds and creates the lost ones anew."""
    import optuna
    from ray.tune.search import ConcurrencyLimiter

    from tune_nas.ray_tune.optuna_bridge import CheckedSearchGenerator, RecordingOptunaSearch

    searcher = RecordingOptunaSearch(metric="val/acc", mode="max", study_name="s",
                                     sampler=optuna.samplers.RandomSampler(seed=0))
    generator = CheckedSearchGenerator(ConcurrencyLimiter(searcher, max_concurrent=2))
    generator._total_samples, generator._counter = 6, 6  # as restored from the snapshot
    assert generator.is_finished()
    assert generator.reconcile(known_trials=4) == 2
    assert not generator.is_finished() and generator._counter == 4
    assert generator.reconcile(known_trials=4) == 0  # a consistent snapshot: nothing changes
    # a generator state older than the experiment's (2 trials behind): it would create 2 extra
    generator._counter = 2
    assert generator.reconcile(known_trials=4) == 0 and generator._counter == 4
    # an empty snapshot: Ray restarted the experiment, holding no trial and counting 1 sample;
    # 2 of 6 trials had ended before, so 4 are to be created
    generator._total_samples = 1
    assert generator.reconcile(known_trials=0) == 4 and generator.total_samples == 1  # would make 1
    generator.expect(6 - 2)
    assert not generator.is_finished() and generator.total_samples == 4
    generator.expect(3)  # never lowered
    assert generator.total_samples == 4


def _finished_ray_trial(number: int, epochs: int = 3):
    """A Ray trial (a stub: no trainable registered) that reported ``epochs`` results, the way
    Ray's controller holds one when it ends: its own placement group factory, its metadata."""
    from ray.tune.experiment import Trial

    trial = Trial("tabular", stub=True, config={"edge0": "none", "trial_number": number},
                  experiment_tag=f"{number}_edge0=none")
    trial.create_placement_group_factory()
    for epoch in range(1, epochs + 1):
        trial.update_last_result({"epoch": epoch, "val/acc": 0.5 + number / 1e4 + epoch / 100,
                                  "model/params": 1e5 + number, "training_iteration": epoch,
                                  "done": epoch == epochs, "config": dict(trial.config)})
    return trial


def test_a_finished_trial_keeps_what_is_read_and_its_snapshot_restores_through_ray():
    """What a finished trial keeps after ``compact_ended_trial``: its last result, metric
    analysis, config and (an equal, shared) placement group factory, so that Ray's ResultGrid
    and experiment snapshot read the same; its last-n sequences are gone. Ray's own JSON
    snapshot of it restores (``Trial.from_json_state``) to the same trial, and its trial state
    JSON is byte for byte what it was (the shared factory pickles as its own did)."""
    import copy

    from ray.tune.execution.placement_groups import PlacementGroupFactory
    from ray.tune.experiment import Trial

    from tune_nas.ray_tune.callbacks import compact_ended_trial

    trials = [_finished_ray_trial(n) for n in range(3)]
    before = [(copy.deepcopy(t.last_result), copy.deepcopy(t.metric_analysis), t.get_json_state()[0])
              for t in trials]
    factories = [t.placement_group_factory for t in trials]
    assert len({id(f) for f in factories}) == 3  # Ray makes one per trial
    for trial in trials:
        compact_ended_trial(trial)
    assert all(t.placement_group_factory is trials[0].placement_group_factory for t in trials)
    for trial, factory, (last, analysis, state_json) in zip(trials, factories, before):
        assert isinstance(trial.placement_group_factory, PlacementGroupFactory)
        assert trial.placement_group_factory == factory
        assert hash(trial.placement_group_factory) == hash(factory)
        assert trial.last_result == last and trial.metric_analysis == analysis
        assert trial.run_metadata.metric_n_steps == {}
        trial.invalidate_json_state()
        state, run_metadata = trial.get_json_state()
        assert state == state_json  # Ray's snapshot of the trial, unchanged
        restored = Trial.from_json_state(state, stub=True)
        restored.restore_run_metadata(run_metadata)
        assert restored.trial_id == trial.trial_id and restored.config == trial.config
        assert restored.placement_group_factory == factory
        assert restored.last_result == last and restored.metric_analysis == analysis
        assert restored.run_metadata.metric_n_steps == {}
    compact_ended_trial(object())  # anything without Ray's metadata: nothing to do


def test_what_finished_trials_leave_in_memory_is_bounded():
    """Over many finished trials the compaction keeps a small part of what Ray held: each
    trial's last-n sequences and its own placement group factory (with its signature binding)
    are freed (~11 of the ~16 KB a stub trial with six metrics holds: 4.6 KB left)."""
    import gc
    import tracemalloc

    from tune_nas.ray_tune.callbacks import compact_ended_trial

    count = 200
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        trials = [_finished_ray_trial(n) for n in range(count)]
        held = tracemalloc.get_traced_memory()[0] - start
        for trial in trials:
            compact_ended_trial(trial)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert len(trials) == count
    assert kept < 0.5 * held, (held / count, kept / count)


def test_the_searcher_keeps_only_the_ids_of_trials_the_study_was_told_the_end_of(tmp_path):
    """Ray's Optuna searcher holds an Optuna trial (with a copy of its frozen trial) per Ray
    trial for the whole search; once the study was told a trial's end only its ids stay. A
    pickled searcher (Ray's snapshot) restores with them, and a resume's reconciliation still
    knows the told trials (it attaches nothing, fails nothing)."""
    import optuna

    from tune_nas.ray_tune.optuna_bridge import RecordingOptunaSearch

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = lr_searcher(url)
    numbers = {rid: searcher.suggest(rid)["trial_number"] for rid in ("ray-a", "ray-b", "ray-c")}
    assert searcher.finish("ray-a", "COMPLETE", 0.9, {"epochs": 3}) == numbers["ray-a"]
    assert searcher.finish("ray-b", "FAIL", None, {"error": "boom"}) == numbers["ray-b"]
    assert set(searcher._ot_trials) == {"ray-c"}
    assert {rid: n for rid, (_, n) in searcher.told_trials.items()} == \
        {"ray-a": numbers["ray-a"], "ray-b": numbers["ray-b"]}
    assert searcher.finish("ray-a", "COMPLETE", 0.1, {"epochs": 3}) is None  # told once only

    restored = pickle.loads(pickle.dumps(searcher))
    restored.attach(url)
    assert set(restored._ot_trials) == {"ray-c"} and restored.told_trials == searcher.told_trials
    assert restored.reconcile(dict(numbers)) == []
    assert restored.skip_told() == {}
    assert restored.finish("ray-c", "PRUNED", None, {"epochs": 1}) == numbers["ray-c"]
    trials = {t.number: t.state.name for t in optuna.load_study(study_name="s", storage=url).trials}
    assert trials == {numbers["ray-a"]: "COMPLETE", numbers["ray-b"]: "FAIL", numbers["ray-c"]: "PRUNED"}

    # a searcher pickled before ``told_trials`` existed: its told trials are in _ot_trials
    old = searcher._detached()
    old["_ot_trial_ids"] = {"ray-a": searcher.told_trials["ray-a"][0]}
    old.pop("_told")
    legacy = RecordingOptunaSearch.__new__(RecordingOptunaSearch)
    legacy.__dict__.update(old)
    legacy.attach(url)
    assert legacy._ot_trials == {} and legacy.told_trials == {"ray-a": searcher.told_trials["ray-a"]}


def test_the_status_line_of_a_resumed_search_counts_the_experiments_trials(tmp_path):
    """After an empty snapshot Ray restarts the experiment counting 1 sample: the status line
    (and its time-left estimate) counts the experiment's num_samples, not Ray's 1."""
    from tune_nas.objectives import Objective
    from tune_nas.ray_tune.callbacks import TrialEvents
    from tune_nas.record.bookkeeper import Bookkeeper
    from tune_nas.record.console import ProgressPrinter

    fresh = TrialEvents(Bookkeeper(tmp_path / "a", Objective(), max_epochs=3), None, ProgressPrinter(Objective()))
    fresh.setup(total_num_samples=6)
    assert fresh.printer.total == 6
    resumed = TrialEvents(Bookkeeper(tmp_path / "b", Objective(), max_epochs=3), None, ProgressPrinter(Objective()))
    resumed.num_samples = 6  # what a resumed run sets
    resumed.setup(total_num_samples=1)
    assert resumed.printer.total == 6
