"""NAS-Bench-101 cell spaces through the searchers: the flat encoding, CellSampler (only valid
cells, none isomorphic to one trained), evolution's cell mutation, the nb101 model's encoding
arguments, and a launcher run that trains no two isomorphic cells."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import optuna
import pytest

from tune_nas.search import create_sampler
from tune_nas.search.cells import (
    CellGenotype,
    CellSampler,
    CellSpaceError,
    SpaceExhausted,
    genotype_of,
    proposal_counts,
)
from tune_nas.search.evolution import RegularizedEvolutionSampler
from tune_nas.search.registry import SearcherSettings
from tune_nas.spaces.nasbench101 import (
    OPS,
    Cell,
    canonical_hash,
    cell_from_params,
    cell_params,
    encoded_vertices,
    enumerate_unique,
    param_choices,
    random_cell,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
SEARCHERS = ("random", "tpe", "evolution", "reinforce")


def _sampler(name: str, seed: int = 0):
    options = {"population_size": 6, "sample_size": 2} if name == "evolution" else {}
    return create_sampler(name, SearcherSettings(seed=seed, n_startup_trials=5, options=options))


def _objective(genotype: CellGenotype):
    """A synthetic score of a cell: conv3x3 vertices and edges of the pruned cell."""
    choices = {name: list(dist.choices) for name, dist in genotype.distributions.items()}

    def objective(trial: optuna.Trial) -> float:
        params = {name: trial.suggest_categorical(name, values) for name, values in choices.items()}
        cell = genotype.cell(params).pruned()
        return sum(op == OPS[0] for op in cell.ops) + 0.1 * cell.num_edges

    return objective


# --------------------------------------------------------------------------- the flat encoding


def test_flat_encoding_round_trips_and_names_a_broken_parameter():
    rng = np.random.default_rng(0)
    for n in (3, 5, 7):
        for _ in range(20):
            cell = random_cell(rng, n)
            params = cell_params(cell)
            assert encoded_vertices(params) == n
            assert cell_from_params({**params, "lr": 0.1}) == cell
    assert encoded_vertices({"lr": 0.1}) is None
    params = cell_params(random_cell(rng, 5))
    del params["edge_4"]
    with pytest.raises(ValueError, match=r"missing \['edge_4'\]"):
        encoded_vertices(params)
    with pytest.raises(ValueError, match=r"edge_2=2"):
        cell_from_params({**cell_params(random_cell(rng, 4)), "edge_2": 2})
    with pytest.raises(ValueError, match="conv5x5"):
        cell_from_params({**cell_params(random_cell(rng, 4)), "op_node_1": "conv5x5"})


def test_param_choices_cover_the_benchmark_encoding():
    choices = param_choices(7)
    assert sum(k.startswith("edge_") for k in choices) == 21 and sum(k.startswith("op_node_") for k in choices) == 5
    assert choices["edge_0"] == [0, 1] and choices["op_node_4"] == list(OPS)
    assert param_choices(4, ops=OPS[:2])["op_node_1"] == list(OPS[:2])


def test_genotype_of_finds_the_space_and_refuses_a_broken_one():
    assert genotype_of({"lr": [0.1, 0.2]}) is None
    genotype = genotype_of({**param_choices(5, ops=[OPS[2], OPS[0]]), "lr": [0.1]}, {"max_edges": 6})
    assert (genotype.num_vertices, genotype.ops, genotype.max_edges) == (5, (OPS[2], OPS[0]), 6)
    for choices, constants, needle in [
        ({**param_choices(4), "edge_1": [1, 0]}, {}, "edge_1"),
        ({**param_choices(4), "op_node_0": ["conv5x5"]}, {}, "conv5x5"),
        ({**param_choices(4), "op_node_0": [OPS[0]]}, {}, "differ"),
        ({k: v for k, v in param_choices(4).items() if k != "edge_0"}, {"edge_0": 1}, "edge_0"),
        (param_choices(4), {"max_edges": 1}, "max_edges"),
        ({**param_choices(4), "max_vertices": [5, 6]}, {}, "max_vertices"),
    ]:
        with pytest.raises(CellSpaceError, match=needle):
            genotype_of(choices, constants)


# --------------------------------------------------------------------------- CellSampler


@pytest.mark.parametrize("searcher", SEARCHERS)
@pytest.mark.parametrize("num_vertices", [7, 4])
def test_every_searcher_proposes_only_valid_cells_and_never_one_trained(searcher, num_vertices):
    genotype = CellGenotype(num_vertices=num_vertices)
    study = optuna.create_study(direction="maximize", sampler=CellSampler(_sampler(searcher), genotype, seed=1))
    n_trials = 40 if num_vertices == 7 else 25
    study.optimize(_objective(genotype), n_trials=n_trials)
    trials = study.get_trials()
    cells = [genotype.cell(t.params) for t in trials]
    assert all(c.is_valid() for c in cells)
    keys = [canonical_hash(c) for c in cells]
    assert len(set(keys)) == n_trials  # no two isomorphic
    assert keys == [t.user_attrs["cell_hash"] for t in trials]
    assert all(Cell.from_dict(t.user_attrs["cell"]) == c.pruned() for t, c in zip(trials, cells))
    counts = proposal_counts(trials)
    assert counts["trained"] == counts["unique_cells"] == n_trials
    if num_vertices == 4:  # a small space: duplicates are common and must have been resampled
        assert counts["duplicates_avoided"] > 0


def test_a_used_up_space_ends_with_space_exhausted():
    genotype = CellGenotype(num_vertices=3)
    unique = enumerate_unique(3)
    study = optuna.create_study(direction="maximize",
                                sampler=CellSampler(_sampler("random"), genotype, max_attempts=50, seed=0))
    with pytest.raises(SpaceExhausted) as caught:
        study.optimize(_objective(genotype), n_trials=unique + 5)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == unique
    assert caught.value.trial_number == unique  # the trial being sampled, for the caller to close
    assert str(caught.value).startswith("cell space exhausted")


def test_a_failed_cell_may_be_proposed_again_but_a_trained_one_not():
    genotype = CellGenotype(num_vertices=3)
    study = optuna.create_study(direction="maximize", sampler=CellSampler(_sampler("random"), genotype, seed=2))
    failed = {}

    def objective(trial):
        params = {name: trial.suggest_categorical(name, list(dist.choices))
                  for name, dist in genotype.distributions.items()}
        key = genotype.key(params)
        if not failed:  # the first trial fails (a NaN loss, say): no result for its cell
            failed[key] = trial.number
            raise ValueError("nan loss")
        return 1.0

    study.optimize(objective, n_trials=enumerate_unique(3) + 1, catch=(ValueError,))
    trials = study.get_trials()
    (key,) = failed
    assert [t.state for t in trials if t.user_attrs["cell_hash"] == key][-1] == optuna.trial.TrialState.COMPLETE
    complete = [t.user_attrs["cell_hash"] for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == len(set(complete)) == enumerate_unique(3)


def test_restricted_ops_are_the_only_ops_proposed():
    genotype = CellGenotype(num_vertices=6, ops=(OPS[0], OPS[2]))
    for searcher in SEARCHERS:
        study = optuna.create_study(direction="maximize", sampler=CellSampler(_sampler(searcher), genotype, seed=3))
        study.optimize(_objective(genotype), n_trials=20)
        assert {t.params[f"op_node_{k}"] for t in study.trials for k in range(4)} <= {OPS[0], OPS[2]}


# --------------------------------------------------------------------------- evolution's cell mutation


def test_evolution_mutates_the_cell_as_one_unit_with_the_benchmarks_mutation():
    genotype = CellGenotype(num_vertices=7)
    sampler = RegularizedEvolutionSampler(population_size=4, sample_size=2, seed=0)
    sampler.use_genotype(genotype)
    space = {**genotype.distributions, "lr": optuna.distributions.FloatDistribution(0.01, 0.1, log=True)}
    rng = np.random.default_rng(4)
    changed_cell = changed_lr = 0
    for _ in range(200):
        parent = {**cell_params(random_cell(rng)), "lr": 0.05}
        child = sampler.mutate(parent, space)
        diff = [k for k in parent if parent[k] != child[k]]
        if diff == ["lr"]:
            changed_lr += 1
            continue
        changed_cell += 1
        # one edge flipped or one op changed, and the child is a valid cell
        assert len(diff) == 1 and diff[0].startswith(("edge_", "op_node_")), diff
        assert genotype.is_valid(child)
    assert changed_cell > 70 and changed_lr > 70  # the cell counts as ONE parameter of two


# --------------------------------------------------------------------------- the model and formatting


def test_nb101_takes_the_flat_encoding():
    torch = pytest.importorskip("torch")
    from tune_nas.models import architecture_args, create_model

    assert {"edge_0", "edge_20", "op_node_4", "max_edges"} <= set(architecture_args("nb101"))
    rng = np.random.default_rng(5)
    cell = random_cell(rng)
    by_params = create_model("nb101", 10, 1, 8, stem_channels=8, stacks=2, cells_per_stack=1, **cell_params(cell))
    by_matrix = create_model("nb101", 10, 1, 8, stem_channels=8, stacks=2, cells_per_stack=1,
                             matrix=cell.matrix, ops=cell.ops)
    assert sum(p.numel() for p in by_params.parameters()) == sum(p.numel() for p in by_matrix.parameters())
    assert by_params.arch_hash() == canonical_hash(cell)
    assert json.loads(by_params.arch_string()) == cell.pruned().as_dict()
    assert by_params(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="not both"):
        create_model("nb101", 10, 1, 8, matrix=cell.matrix, ops=cell.ops, **cell_params(cell))
    partial = cell_params(cell)
    del partial["op_node_3"]
    with pytest.raises(ValueError, match="op_node_3"):
        create_model("nb101", 10, 1, 8, **partial)
    wide = Cell.from_lists(np.triu(np.ones((4, 4), dtype=int), 1), ["input", OPS[0], OPS[1], "output"])  # 6 edges
    with pytest.raises(ValueError, match="5 edges"):
        create_model("nb101", 10, 1, 8, stem_channels=8, max_edges=5, **cell_params(wide))
    assert create_model("nb101", 10, 1, 8, stem_channels=8, max_edges=6, **cell_params(wide)) is not None


def test_short_config_shows_a_cell_as_its_key():
    from tune_nas.record.formatting import short_config

    cell = random_cell(np.random.default_rng(6))
    assert short_config({**cell_params(cell), "lr": 0.1}) == f"cell={canonical_hash(cell)} lr=0.1"


def test_a_searcher_flag_drops_the_files_searcher_options(tmp_path):
    from tune_nas.config.space_file import load_space

    space = load_space("nasbench101_digits")
    assert space.spec.searcher == "evolution" and space.spec.searcher_options
    assert space.cell_genotype() == CellGenotype(num_vertices=7)
    assert space.with_overrides(searcher="random").spec.searcher_options == {}
    assert space.with_overrides(searcher="evolution").spec.searcher_options == space.spec.searcher_options
    sampled = space.sample(seed=3)
    assert cell_from_params(sampled).is_valid()  # a first trial gets a valid cell


# --------------------------------------------------------------------------- through the launcher


def test_launcher_evolution_trains_no_two_isomorphic_cells_and_ends_when_the_space_is_used_up(tmp_path):
    """A 3-vertex space (7 unique cells among 24 encodings) searched by evolution for 12 trials:
    7 distinct cells train, every repeat is resampled, then the search ends, exit 0."""
    from conftest import run_launch

    space = tmp_path / "cells3.py"
    space.write_text(textwrap.dedent("""
        from ray import tune
        from tune_nas.spaces.nasbench101 import param_choices
        EXPERIMENT = {"model": "nb101", "dataset": "digits", "max_epochs": 1, "num_samples": 12,
                      "cpus_per_trial": 1, "searcher": "evolution",
                      "searcher_options": {"population_size": 3, "sample_size": 2}}
        PARAM_SPACE = {**{k: tune.choice(v) for k, v in param_choices(3).items()},
                       "stem_channels": 4, "stacks": 1, "cells_per_stack": 1, "batch_size": 128}
        """))
    proc = run_launch("--space", str(space), "--name", "cells", "--trials-dir", str(tmp_path / "trials"),
                      "--seed", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "trials" / "cells" / "summary.json").read_text())
    trials = summary["trials"]
    hashes = [t["arch_hash"] for t in trials]
    assert len(trials) == len(set(hashes)) == enumerate_unique(3) == 7
    for t in trials:
        cell = Cell.from_dict(t["arch"])
        assert canonical_hash(cell) == t["arch_hash"] and cell.pruned() == cell
    cells = summary["cells"]
    assert cells["trained"] == cells["unique_cells"] == 7
    assert cells["duplicates_avoided"] > 0 and cells["exhausted"].startswith("cell space exhausted")
    study = optuna.load_study(study_name="cells", storage=f"sqlite:///{tmp_path / 'trials' / 'cells' / 'optuna.db'}")
    by_number = {t.number: t for t in study.trials}
    for t in trials:
        attrs = by_number[t["number"]].user_attrs
        assert attrs["cell_hash"] == attrs["arch_hash"] == t["arch_hash"]
        assert attrs["cell"] == t["arch"]
    assert [t.state for t in study.trials].count(optuna.trial.TrialState.FAIL) == 1  # the proposal that found none
    assert "Cells: 7 trained, 7 unique" in proc.stdout and "the search ended early" in proc.stdout
