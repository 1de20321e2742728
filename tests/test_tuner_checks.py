"""Decisions the tuner makes before a search: concurrency, shared storage, resources."""

from pathlib import Path

import pytest

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


def test_a_rerun_of_a_trial_the_study_already_closed_leaves_the_study_as_told():
    """After a driver restart Ray re-runs trials that ended after its last snapshot (minutes
    old on object storage); their results must not reach the finished Optuna trial."""
    import optuna
    from ray import tune

    from tune_nas.ray_tune.optuna_bridge import RecordingOptunaSearch

    storage = optuna.storages.InMemoryStorage()
    searcher = RecordingOptunaSearch(space={"lr": tune.loguniform(1e-3, 1e-1)}, metric="val/acc",
                                     mode="max", study_name="s", storage=storage,
                                     sampler=optuna.samplers.RandomSampler(seed=0))
    config = searcher.suggest("ray-a")
    searcher.on_trial_result("ray-a", {"val/acc": 0.5, "epoch": 1})
    assert searcher.finish("ray-a", "PRUNED", None, {"epochs": 1}) == config["trial_number"]
    # what a restored searcher looks like: it knows the trial, not that it was told
    searcher._completed_trials.discard("ray-a")
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # what a re-run hit before
        searcher.on_trial_result("ray-a", {"val/acc": 0.9, "epoch": 2})
    assert searcher.skip_told() == [config["trial_number"]]
    searcher.on_trial_result("ray-a", {"val/acc": 0.9, "epoch": 2})  # the re-run: ignored
    assert searcher.finish("ray-a", "COMPLETE", 0.9, {"epochs": 3}) is None
    (trial,) = optuna.load_study(study_name="s", storage=storage).trials
    assert trial.state.name == "PRUNED" and trial.intermediate_values == {1: 0.5}
    assert trial.user_attrs["epochs"] == 1


def test_a_restored_searcher_and_experiment_from_different_moments_are_reconciled():
    """Ray's experiment state and the searcher's are separate files of one snapshot: a driver
    killed between them resumes with one older than the other. A trial only the searcher knew
    never runs (FAIL "orphaned", its concurrency slot freed); a trial only Ray held is told
    when it ends; a trial asked after both snapshots is FAIL "orphaned"."""
    import optuna
    from ray import tune

    from tune_nas.ray_tune.optuna_bridge import RecordingOptunaSearch

    storage = optuna.storages.InMemoryStorage()
    searcher = RecordingOptunaSearch(space={"lr": tune.loguniform(1e-3, 1e-1)}, metric="val/acc",
                                     mode="max", study_name="s", storage=storage,
                                     sampler=optuna.samplers.RandomSampler(seed=0))
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
    import pickle
    import shutil

    import optuna
    from ray import tune

    from tune_nas.ray_tune.optuna_bridge import RecordingOptunaSearch
    from tune_nas.storage.study_db import open_storage

    first = tmp_path / "first" / "optuna.db"
    first.parent.mkdir()
    url = f"sqlite:///{first}"
    searcher = RecordingOptunaSearch(space={"lr": tune.loguniform(1e-3, 1e-1)}, metric="val/acc",
                                     mode="max", study_name="s", storage=open_storage(url),
                                     sampler=optuna.samplers.RandomSampler(seed=0))
    searcher.storage_url = url
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
    import pickle

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


def test_a_finished_trials_run_metadata_is_compacted_and_still_updates():
    """Ray's per-metric deques of a finished trial become lists of the same values: a fraction
    of the memory, and Ray's own updates (and its JSON snapshot) still work on them."""
    import tracemalloc

    from ray.tune.trainable.metadata import _TrainingRunMetadata

    from tune_nas.ray_tune.callbacks import compact_ended_trial

    class Trial:
        def __init__(self) -> None:
            self.run_metadata = _TrainingRunMetadata()
            for step in (1, 2, 3):
                for k in range(30):
                    self.run_metadata.update_metric(f"metric{k}", float(k * step), step)

    tracemalloc.start()
    try:
        trials = [Trial() for _ in range(50)]
        before = tracemalloc.get_traced_memory()[0]
        for trial in trials:
            compact_ended_trial(trial)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after < 0.7 * before
    metadata = trials[0].run_metadata
    assert metadata.metric_n_steps["metric2"]["5"] == [2.0, 4.0, 6.0]
    metadata.update_metric("metric2", 8.0, 4)
    assert metadata.metric_analysis["metric2"]["last-5-avg"] == 5.0
    assert '"metric_n_steps"' in metadata.get_json_state()
    compact_ended_trial(object())  # anything without Ray's metadata: nothing to do
