"""NAS-Bench-101 cells: validity and pruning, the exact canonical key, mutation, sampling, counting."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from tune_nas.spaces.nasbench101 import (
    INPUT,
    OPS,
    OUTPUT,
    Cell,
    canonical_cell,
    canonical_hash,
    enumerate_unique,
    mutate,
    random_cell,
)

try:  # networkx is the independent judge of isomorphism; it is not a dependency of tune_nas
    import networkx as nx
except ImportError:  # pragma: no cover
    nx = None
needs_networkx = pytest.mark.skipif(nx is None, reason="networkx is not installed")

C3, C1, MP = OPS


def _graph(cell: Cell):
    graph = nx.DiGraph()
    graph.add_nodes_from((v, {"op": op}) for v, op in enumerate(cell.ops))
    graph.add_edges_from((i, j) for i, row in enumerate(cell.matrix) for j, e in enumerate(row) if e)
    return graph


def _isomorphic(a: Cell, b: Cell) -> bool:
    return nx.is_isomorphic(_graph(a), _graph(b), node_match=lambda x, y: x["op"] == y["op"])


def _relabel_randomly(cell: Cell, rng: np.random.Generator) -> Cell:
    """The same network under a random inner-vertex order that keeps the matrix upper-triangular."""
    n, m = cell.num_vertices, np.array(cell.matrix)
    orders = [[0, *p, n - 1] for p in itertools.permutations(range(1, n - 1))]
    orders = [p for p in orders if not np.tril(m[np.ix_(p, p)]).any()]
    p = orders[rng.integers(len(orders))]
    return Cell.from_lists(m[np.ix_(p, p)], [cell.ops[i] for i in p])


def _invariant(cell: Cell) -> tuple:
    m = np.array(cell.matrix)
    return (cell.num_vertices, cell.num_edges, tuple(sorted(zip(cell.ops, m.sum(0), m.sum(1)))))


# --- codec and validity -------------------------------------------------------------------------


def test_a_dangling_vertex_and_an_unfed_vertex_are_pruned():
    # 0 -> 1 -> 4 is the live path; 2 has no way out, 3 no way in.
    cell = Cell.from_lists(
        [[0, 1, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
        [INPUT, C3, C1, MP, OUTPUT],
    )
    assert cell.pruned() == Cell(((0, 1, 0), (0, 0, 1), (0, 0, 0)), (INPUT, C3, OUTPUT))
    assert cell.is_valid()
    assert canonical_hash(cell) == canonical_hash(cell.pruned())


def test_disconnected_input_and_output_is_invalid():
    cell = Cell.from_lists([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], [INPUT, C3, C1, OUTPUT])
    assert cell.pruned() is None and not cell.is_valid()
    with pytest.raises(ValueError, match="does not reach the output"):
        canonical_hash(cell)


def test_the_edge_and_vertex_limits_apply_to_the_pruned_cell():
    chain = np.eye(7, k=1, dtype=int)
    ten = chain.copy()
    ten[0, 2:6] = 1  # 6 chain edges + 4 skips, all live
    ops = [INPUT, C3, C1, MP, C3, C1, OUTPUT]
    assert Cell.from_lists(chain, ops).is_valid()
    assert not Cell.from_lists(ten, ops).is_valid()
    assert Cell.from_lists(ten, ops).is_valid(max_edges=10)
    eight = np.eye(8, k=1, dtype=int)
    assert not Cell.from_lists(eight, [INPUT, *ops[1:-1], C3, OUTPUT]).is_valid()
    assert Cell.from_lists(eight, [INPUT, *ops[1:-1], C3, OUTPUT]).is_valid(max_vertices=8)
    # 8 vertices, one of them dead (6 feeds the output but nothing feeds 6): valid once pruned.
    padded = np.zeros((8, 8), dtype=int)
    padded[range(5), range(1, 6)] = 1
    padded[5, 7] = padded[6, 7] = 1
    cell = Cell.from_lists(padded, [INPUT, *ops[1:-1], C3, OUTPUT])
    assert cell.num_vertices == 8 and cell.pruned().num_vertices == 7 and cell.is_valid()


@pytest.mark.parametrize(
    "matrix, ops, rule",
    [
        ([[0, 1], [0, 0], [0, 0]], [INPUT, OUTPUT], "must be 2x2"),
        ([[0, 1], [1, 0]], [INPUT, OUTPUT], "strictly upper-triangular"),
        ([[1, 1], [0, 0]], [INPUT, OUTPUT], "strictly upper-triangular"),
        ([[0, 2], [0, 0]], [INPUT, OUTPUT], "0 or 1"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, "conv5x5", OUTPUT], "inner ops must be one of"),
        ([[0, 1], [0, 0]], [OUTPUT, INPUT], "first op must be 'input'"),
        ([[0]], [INPUT], "at least 2 vertices"),
    ],
)
def test_bad_cells_fail_with_one_line_naming_the_rule(matrix, ops, rule):
    with pytest.raises(ValueError, match=rule) as error:
        Cell.from_lists(matrix, ops)
    assert "\n" not in str(error.value)


def test_dict_round_trip_and_bad_dict():
    cell = random_cell(np.random.default_rng(3))
    data = cell.as_dict()
    assert isinstance(data["matrix"][0], list) and isinstance(data["ops"], list)
    assert Cell.from_dict(data) == cell
    with pytest.raises(ValueError, match="'matrix' and 'ops'"):
        Cell.from_dict({"ops": list(cell.ops)})


# --- canonical key ------------------------------------------------------------------------------


@needs_networkx
def test_relabellings_share_the_key_and_the_key_matches_networkx_isomorphism():
    rng = np.random.default_rng(0)
    cells = [random_cell(rng).pruned() for _ in range(2500)]
    for cell in cells[:1000]:
        other = _relabel_randomly(cell, rng)
        assert canonical_hash(other) == canonical_hash(cell)
        assert canonical_cell(other) == canonical_cell(cell)
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(canonical_hash(cell), []).append(cell)
    assert len(groups) > 800
    for members in groups.values():  # same key -> isomorphic
        assert all(_isomorphic(members[0], m) for m in members[1:])
    by_invariant: dict[tuple, list[Cell]] = {}
    for members in groups.values():
        by_invariant.setdefault(_invariant(members[0]), []).append(members[0])
    pairs = 0
    for reps in by_invariant.values():  # different keys, same degrees and ops -> not isomorphic
        for a, b in itertools.combinations(reps, 2):
            assert not _isomorphic(a, b)
            pairs += 1
    assert pairs > 50  # the hard cases (equal degree sequences and op multisets) were exercised


@needs_networkx
def test_the_key_separates_graphs_that_only_differ_in_wiring():
    # Same ops, same in/out degree multiset per op, different networks: 1 -> 3 vs 2 -> 3 swapped roles.
    a = Cell.from_lists(
        [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], [INPUT, C3, C1, MP, OUTPUT]
    )
    b = Cell.from_lists(
        [[0, 1, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], [INPUT, C3, C1, MP, OUTPUT]
    )
    assert not _isomorphic(a, b)
    assert canonical_hash(a) != canonical_hash(b)


def _brute_force_unique(num_vertices: int) -> tuple[int, int]:
    """Unique networks over every encoding with ``num_vertices`` vertices: (by key, by networkx)."""
    n = num_vertices
    rows, cols = np.triu_indices(n, 1)
    pruned_cells: set[Cell] = set()
    for mask in range(1 << rows.size):
        matrix = np.zeros((n, n), dtype=int)
        matrix[rows, cols] = [(mask >> e) & 1 for e in range(rows.size)]
        for inner in itertools.product(OPS, repeat=n - 2):
            cell = Cell.from_lists(matrix, [INPUT, *inner, OUTPUT])
            if cell.is_valid():
                pruned_cells.add(cell.pruned())
    keys = {canonical_hash(cell) for cell in pruned_cells}
    buckets: dict[tuple, list[Cell]] = {}
    for cell in pruned_cells:
        bucket = buckets.setdefault(_invariant(cell), [])
        if not any(_isomorphic(cell, seen) for seen in bucket):
            bucket.append(cell)
    return len(keys), sum(map(len, buckets.values()))


@needs_networkx
@pytest.mark.parametrize("num_vertices, expected", [(2, 1), (3, 7), (4, 91), (5, 2532)])
def test_enumeration_matches_pairwise_isomorphism_for_small_cells(num_vertices, expected):
    by_key, by_networkx = _brute_force_unique(num_vertices)
    assert by_key == by_networkx == enumerate_unique(num_vertices) == expected


def test_nasbench101_full_space_count():
    """The paper's number: 423,624 unique cells for 7 vertices and 9 edges (about 1.5 s)."""
    assert enumerate_unique(7, max_edges=9) == 423_624


# --- search moves -------------------------------------------------------------------------------


def test_mutation_changes_exactly_one_edge_or_one_op_and_stays_valid():
    rng = np.random.default_rng(1)
    kinds = Counter()
    for _ in range(600):
        cell = random_cell(rng)
        child = mutate(cell, rng)
        assert child.is_valid() and child.num_vertices == cell.num_vertices
        edge_changes = int(np.abs(np.array(child.matrix) - np.array(cell.matrix)).sum())
        op_changes = sum(a != b for a, b in zip(child.ops, cell.ops))
        assert (edge_changes, op_changes) in {(1, 0), (0, 1)}
        kinds["edge" if edge_changes else "op"] += 1
    assert 200 < kinds["op"] < 400  # op changes are always valid: about half the moves


def test_mutation_kinds_follow_the_probabilities_and_bad_probabilities_fail():
    rng = np.random.default_rng(2)
    cell = random_cell(rng)
    assert all(mutate(cell, rng, edge_prob=0.0, op_prob=1.0).matrix == cell.matrix for _ in range(30))
    assert all(mutate(cell, rng, edge_prob=1.0, op_prob=0.0).ops == cell.ops for _ in range(30))
    with pytest.raises(ValueError, match="sum to 1"):
        mutate(cell, rng, edge_prob=0.7, op_prob=0.7)
    with pytest.raises(ValueError, match="no single edge flip or op change"):
        mutate(Cell.from_lists([[0, 1], [0, 0]], [INPUT, OUTPUT]), rng)


def test_random_cells_are_valid_reproducible_and_uniform_over_valid_encodings():
    assert random_cell(np.random.default_rng(9)) == random_cell(np.random.default_rng(9))
    rng = np.random.default_rng(4)
    cells = [random_cell(rng) for _ in range(300)]
    assert all(c.is_valid() and c.num_vertices == 7 for c in cells)
    # 3 vertices: 5 valid matrices x 3 ops = 15 valid encodings, each expected 200 times in 3000.
    counts = Counter(random_cell(rng, num_vertices=3) for _ in range(3000))
    assert len(counts) == 15 and all(140 < k < 260 for k in counts.values())
    with pytest.raises(ValueError, match="num_vertices >= 2"):
        random_cell(rng, num_vertices=1)
