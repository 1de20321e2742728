"""NAS-Bench-101 cells (Ying et al., ICML 2019) as pure genotypes: codec, validity, canonical key.

A cell is a DAG of vertices ``0 .. n-1`` given by a strictly upper-triangular 0/1 adjacency
matrix (``matrix[i][j] == 1`` is an edge ``i -> j``) and one operation per vertex: vertex 0 is
:data:`INPUT`, the last one :data:`OUTPUT`, the inner ones are taken from :data:`OPS`.

Validity follows NAS-Bench-101 (``model_spec.py`` ``_prune`` and ``api._check_spec``): vertices
that are not on some input -> output path are pruned (they cannot influence the output); if the
output is unreachable from the input the cell is invalid; the *pruned* cell must have at most
``max_vertices`` vertices (default 7) and at most ``max_edges`` edges (default 9).

The canonical key (:func:`canonical_hash`) is exact. NAS-Bench-101 keys cells with an iterative
(Weisfeiler-Lehman-like) hash of degrees and ops; such hashes are invariants, not canonical forms,
and can in principle give two non-isomorphic graphs the same hash. Here a cell has at most a few
inner vertices (5 in the benchmark: 5! = 120 relabellings), so we try *every* permutation of the
inner vertices (input and output are fixed by their ops) at once with numpy and keep the smallest
encoding among those that are upper-triangular. Two cells get the same key if and only if their
pruned graphs are isomorphic with matching ops: no collisions, no false splits.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

INPUT = "input"
OUTPUT = "output"
OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
MAX_VERTICES = 7
MAX_EDGES = 9
# The exhaustive canonical form tries (n - 2)! relabellings: 8 inner vertices = 40,320 is the ceiling.
CANONICAL_MAX_VERTICES = 10

_OP_INDEX = {op: i for i, op in enumerate(OPS)}


@dataclass(frozen=True)
class Cell:
    """One NAS-Bench-101 cell as given (not pruned): an upper-triangular 0/1 matrix and the ops.

    Immutable and hashable (usable as a dict key for exact-encoding identity); use
    :func:`canonical_hash` for identity up to isomorphism and pruning.
    """

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        _check(self.matrix, self.ops)

    @classmethod
    def from_lists(cls, matrix, ops) -> Cell:
        """A cell from nested lists / a numpy array and a list of op names; ValueError on bad input."""
        try:
            rows = tuple(tuple(int(v) for v in row) for row in np.asarray(matrix).tolist())
        except (TypeError, ValueError) as error:
            raise ValueError(f"cell matrix {matrix!r}: must be a square 0/1 matrix ({error})") from None
        return cls(rows, tuple(str(op) for op in ops))

    @property
    def num_vertices(self) -> int:
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        return sum(map(sum, self.matrix))

    def pruned(self) -> Cell | None:
        """The cell without the vertices that lie on no input -> output path; None if the output is unreachable."""
        n = self.num_vertices
        from_input = [False] * n
        from_input[0] = True
        for i in range(n):  # upper-triangular: index order is a topological order
            if from_input[i]:
                for j in range(i + 1, n):
                    if self.matrix[i][j]:
                        from_input[j] = True
        to_output = [False] * n
        to_output[n - 1] = True
        for i in range(n - 1, -1, -1):
            if any(self.matrix[i][j] and to_output[j] for j in range(i + 1, n)):
                to_output[i] = True
        if not from_input[n - 1]:
            return None
        keep = [i for i in range(n) if from_input[i] and to_output[i]]
        if len(keep) == n:
            return self
        return Cell(tuple(tuple(self.matrix[i][j] for j in keep) for i in keep), tuple(self.ops[i] for i in keep))

    def is_valid(self, max_vertices: int = MAX_VERTICES, max_edges: int = MAX_EDGES) -> bool:
        """NAS-Bench-101's rule: input reaches output, and the pruned cell respects both limits."""
        pruned = self.pruned()
        return pruned is not None and pruned.num_vertices <= max_vertices and pruned.num_edges <= max_edges

    def as_dict(self) -> dict[str, list]:
        """``{"matrix": [[...]], "ops": [...]}``: JSON-ready, NAS-Bench-101's ``module_adjacency``/``module_operations``."""
        return {"matrix": [list(row) for row in self.matrix], "ops": list(self.ops)}

    @classmethod
    def from_dict(cls, data: dict) -> Cell:
        """The inverse of :meth:`as_dict`; ValueError naming the missing key or the broken rule."""
        if not isinstance(data, dict) or "matrix" not in data or "ops" not in data:
            raise ValueError(f"cell {data!r}: must be a dict with keys 'matrix' and 'ops'")
        return cls.from_lists(data["matrix"], data["ops"])


def _check(matrix: tuple[tuple[int, ...], ...], ops: tuple[str, ...]) -> None:
    n = len(ops)
    if n < 2:
        raise ValueError(f"cell ops {list(ops)!r}: need at least 2 vertices (input and output)")
    if len(matrix) != n or any(len(row) != n for row in matrix):
        raise ValueError(f"cell matrix {[list(r) for r in matrix]!r}: must be {n}x{n}, one row and column per op")
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if value not in (0, 1):
                raise ValueError(f"cell matrix[{i}][{j}] = {value!r}: entries must be 0 or 1")
            if value and j <= i:
                raise ValueError(
                    f"cell matrix[{i}][{j}] = 1: the matrix must be strictly upper-triangular (edges i -> j, i < j)"
                )
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise ValueError(f"cell ops {list(ops)!r}: the first op must be {INPUT!r} and the last {OUTPUT!r}")
    for i, op in enumerate(ops[1:-1], start=1):
        if op not in _OP_INDEX:
            raise ValueError(f"cell ops[{i}] = {op!r}: inner ops must be one of {list(OPS)}")


# --- canonical form -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Relabellings:
    """Index tables for trying every inner-vertex order of an n-vertex cell with one numpy gather."""

    inner_orders: np.ndarray  # ((n-2)!, n-2): the inner vertices (0-based among them) in each order
    upper: np.ndarray  # ((n-2)!, E): flat index into the matrix of each upper-triangle entry after relabelling
    lower: np.ndarray  # ((n-2)!, E): the mirrored entries, which must all be 0 for an upper-triangular result
    bit_weights: np.ndarray  # (E,): 2^(E-1) .. 1, the first upper-triangle entry most significant
    op_weights: np.ndarray  # (n-2,): 3^(n-3) .. 1, the first inner op most significant


@cache
def _relabellings(n: int) -> _Relabellings:
    """All vertex orders that keep input first and output last: relabelling by ``p`` maps the
    matrix to ``matrix[p][:, p]`` and the ops to ``ops[p]``."""
    inner = [list(p) for p in itertools.permutations(range(1, n - 1))]
    orders = np.array([[0, *p, n - 1] for p in inner], dtype=np.intp).reshape(len(inner), n)
    rows, cols = np.triu_indices(n, 1)
    return _Relabellings(
        inner_orders=orders[:, 1:-1] - 1,
        upper=orders[:, rows] * n + orders[:, cols],
        lower=orders[:, cols] * n + orders[:, rows],
        bit_weights=np.left_shift(1, np.arange(rows.size - 1, -1, -1, dtype=np.int64)),
        op_weights=np.power(len(OPS), np.arange(n - 3, -1, -1, dtype=np.int64)),
    )


def _canonical_keys(matrix: np.ndarray, labels: np.ndarray) -> tuple[int, np.ndarray]:
    """Canonical form of one adjacency matrix under many inner-op labellings at once.

    ``matrix``: (n, n) 0/1; ``labels``: (L, n - 2) op indices. Among the relabellings that leave
    the matrix upper-triangular, the canonical one minimises (the upper triangle read row by row
    as binary digits, then the inner ops read as base-3 digits). Returns (the minimal bits, the
    (L,) minimal op codes): together the canonical key.
    """
    table = _relabellings(matrix.shape[0])
    flat = matrix.ravel()
    bits = flat[table.upper].astype(np.int64) @ table.bit_weights
    bits[flat[table.lower].any(axis=1)] = np.iinfo(np.int64).max
    best_bits = int(bits.min())
    # Orders reaching the minimal matrix differ by an automorphism of it: only they can minimise the ops.
    codes = labels[:, table.inner_orders[bits == best_bits]] @ table.op_weights  # (L, such orders)
    return best_bits, codes.min(axis=1)


def _key_string(n: int, bits: int, code: int) -> str:
    digits = np.base_repr(code, 3).rjust(n - 2, "0") if n > 2 else ""
    return f"{n}-{bits:x}-{digits}"


def canonical_hash(cell: Cell) -> str:
    """The exact isomorphism-invariant key of the network a cell builds: ``"<n>-<edge bits hex>-<op digits>"``.

    The cell is pruned first (as NAS-Bench-101 hashes pruned specs), so cells that differ only in
    dead vertices share a key. ValueError if the input does not reach the output. About 0.1 ms for a
    7-vertex cell, 60 µs on average over random ones (benchmarks/nasbench101_count.py measures it).
    """
    pruned = cell.pruned()
    if pruned is None:
        raise ValueError(f"cell {cell.as_dict()!r}: the input does not reach the output, so it has no network to hash")
    n = pruned.num_vertices
    if n > CANONICAL_MAX_VERTICES:
        raise ValueError(
            f"cell with {n} vertices after pruning: the exhaustive canonical form supports at most {CANONICAL_MAX_VERTICES}"
        )
    labels = np.array([[_OP_INDEX[op] for op in pruned.ops[1:-1]]], dtype=np.int64).reshape(1, n - 2)
    bits, codes = _canonical_keys(np.array(pruned.matrix, dtype=np.uint8), labels)
    return _key_string(n, bits, int(codes[0]))


def canonical_cell(cell: Cell) -> Cell:
    """The pruned cell relabelled into its canonical (upper-triangular) encoding: equal for isomorphic cells."""
    key = canonical_hash(cell)
    n_text, bits_text, digits = key.split("-")
    n, bits = int(n_text), int(bits_text, 16)
    rows, cols = np.triu_indices(n, 1)
    matrix = np.zeros((n, n), dtype=int)
    matrix[rows, cols] = [(bits >> (rows.size - 1 - e)) & 1 for e in range(rows.size)]
    return Cell.from_lists(matrix, [INPUT, *(OPS[int(d)] for d in digits), OUTPUT])


# --- search moves -------------------------------------------------------------------------------


def mutate(
    cell: Cell,
    rng: np.random.Generator,
    edge_prob: float = 0.5,
    op_prob: float = 0.5,
    max_vertices: int = MAX_VERTICES,
    max_edges: int = MAX_EDGES,
    ops: Sequence[str] = OPS,
) -> Cell:
    """NAS-Bench-101's mutation, one change at a time: flip one edge or change one inner op, staying valid.

    The move is drawn like rejection sampling with unbounded retries -- a kind (edge with
    ``edge_prob``, op with ``op_prob``, which must sum to 1), then a uniform slot (one of the
    ``n(n-1)/2`` upper-triangular entries, or an inner vertex and one of the other ops), retried
    until the result is valid -- but computed exactly: all at most ``21 + 5*2`` neighbours are
    listed, the invalid ones dropped and one drawn with the renormalised weights. So it always
    terminates and raises ValueError only when the cell has no valid neighbour at all (e.g. the
    two-vertex cell). The result keeps the cell's vertex count; it is not pruned. ``ops`` are the
    inner ops a vertex may change to (a space that searches a subset of :data:`OPS`).
    """
    if edge_prob < 0 or op_prob < 0 or abs(edge_prob + op_prob - 1.0) > 1e-9:
        raise ValueError(f"mutate edge_prob={edge_prob!r}, op_prob={op_prob!r}: must be non-negative and sum to 1")
    n = cell.num_vertices
    slots = [(i, j) for i in range(n) for j in range(i + 1, n)]
    candidates: list[Cell] = []
    weights: list[float] = []
    if edge_prob > 0:
        for i, j in slots:
            rows = [list(row) for row in cell.matrix]
            rows[i][j] = 1 - rows[i][j]
            candidates.append(Cell(tuple(map(tuple, rows)), cell.ops))
            weights.append(edge_prob / len(slots))
    if op_prob > 0 and n > 2 and len(ops) > 1:
        for v in range(1, n - 1):
            others = [op for op in ops if op != cell.ops[v]]
            for op in others:
                candidates.append(Cell(cell.matrix, cell.ops[:v] + (op,) + cell.ops[v + 1 :]))
                weights.append(op_prob / ((n - 2) * len(others)))
    valid = [(c, w) for c, w in zip(candidates, weights) if c.is_valid(max_vertices, max_edges)]
    if not valid:
        raise ValueError(
            f"mutate cell {cell.as_dict()!r}: no single edge flip or op change gives a valid cell "
            f"(max_vertices={max_vertices}, max_edges={max_edges}, edge_prob={edge_prob}, op_prob={op_prob})"
        )
    p = np.array([w for _, w in valid])
    return valid[int(rng.choice(len(valid), p=p / p.sum()))][0]


def random_cell(
    rng: np.random.Generator,
    num_vertices: int = MAX_VERTICES,
    max_edges: int = MAX_EDGES,
    max_tries: int = 10_000,
    ops: Sequence[str] = OPS,
) -> Cell:
    """A uniformly random valid encoding with ``num_vertices`` vertices, by rejection (NAS-Bench-101's ``random_spec``).

    Each try draws every upper-triangular entry as a fair coin and every inner op uniformly and
    keeps the first valid cell; so the result is uniform over valid *encodings* (not over unique
    networks: a network with many equivalent encodings is proportionally more likely). About three
    tries in four succeed for 7 vertices and 9 edges; RuntimeError after ``max_tries``. Inner ops
    are drawn from ``ops``.
    """
    if num_vertices < 2 or max_edges < 1:
        raise ValueError(
            f"random_cell num_vertices={num_vertices}, max_edges={max_edges}: need num_vertices >= 2 and max_edges >= 1"
        )
    rows, cols = np.triu_indices(num_vertices, 1)
    for _ in range(max_tries):
        matrix = np.zeros((num_vertices, num_vertices), dtype=int)
        matrix[rows, cols] = rng.integers(0, 2, size=rows.size)
        inner = [ops[i] for i in rng.integers(0, len(ops), size=num_vertices - 2)]
        cell = Cell.from_lists(matrix, [INPUT, *inner, OUTPUT])
        if cell.is_valid(max_vertices=num_vertices, max_edges=max_edges):
            return cell
    raise RuntimeError(
        f"random_cell: no valid cell with {num_vertices} vertices and <= {max_edges} edges in {max_tries} tries"
    )


# --- the flat encoding a search space samples -------------------------------------------------

#: The name of the parameter of upper-triangular entry ``k`` (row by row: 0->1, 0->2, ..., 1->2, ...)
#: and of inner vertex ``k + 1``'s op: the flat encoding of NAS-Bench-101's tabular benchmarks
#: (Klein's ``nas_benchmarks`` ``NASCifar10A``), which every Optuna sampler can handle.
EDGE_PARAM = "edge_{}"
OP_PARAM = "op_node_{}"
#: The flat encoding reaches as far as the default limit on vertices (21 edges, 5 ops).
PARAM_MAX_VERTICES = MAX_VERTICES


def param_names(num_vertices: int) -> tuple[list[str], list[str]]:
    """(edge parameter names, op parameter names) of the flat encoding of ``num_vertices`` vertices."""
    if not 2 <= num_vertices <= PARAM_MAX_VERTICES:
        raise ValueError(f"cell num_vertices={num_vertices!r}: the flat encoding covers 2 to {PARAM_MAX_VERTICES}")
    edges = num_vertices * (num_vertices - 1) // 2
    return [EDGE_PARAM.format(k) for k in range(edges)], [OP_PARAM.format(k) for k in range(num_vertices - 2)]


def param_choices(num_vertices: int = MAX_VERTICES, ops: Sequence[str] = OPS) -> dict[str, list]:
    """Every parameter of the flat encoding and its choices (``[0, 1]`` per edge, ``ops`` per vertex):
    what a space file turns into ``tune.choice`` domains or ``trial.suggest_categorical`` calls."""
    edges, vertices = param_names(num_vertices)
    return {**{name: [0, 1] for name in edges}, **{name: list(ops) for name in vertices}}


def encoded_vertices(names: Sequence[str] | Mapping[str, object]) -> int | None:
    """The vertex count of the flat encoding among ``names``; None when no name belongs to it;
    ValueError when some but not all parameters of one vertex count are there."""
    edge_keys = {n for n in names if isinstance(n, str) and n.startswith("edge_") and n[5:].isdigit()}
    op_keys = {n for n in names if isinstance(n, str) and n.startswith("op_node_") and n[8:].isdigit()}
    if not edge_keys and not op_keys:
        return None
    for n in range(2, PARAM_MAX_VERTICES + 1):
        edges, vertices = param_names(n)
        if edge_keys == set(edges) and op_keys == set(vertices):
            return n
    n = min(max(len(op_keys) + 2, 2), PARAM_MAX_VERTICES)  # the vertex count the ops suggest
    edges, vertices = param_names(n)
    order = {name: i for i, name in enumerate((*edges, *vertices))}
    missing = [name for name in (*edges, *vertices) if name not in edge_keys | op_keys]
    extra = sorted((edge_keys | op_keys) - set(order), key=lambda k: (k[0], int(k.rsplit("_", 1)[1])))
    raise ValueError(
        f"cell parameters of {n} vertices: missing {missing or 'none'}, not of the encoding {extra or 'none'}; "
        f"rule: a complete flat encoding of n vertices (2 <= n <= {PARAM_MAX_VERTICES}): "
        f"edge_0 .. edge_{{n(n-1)/2 - 1}} and op_node_0 .. op_node_{{n-3}}"
    )


def cell_from_params(params: Mapping[str, object]) -> Cell:
    """The (unpruned) cell a flat encoding describes; other keys are ignored. ValueError naming
    the parameter and the rule on an incomplete encoding, an edge other than 0/1, an unknown op."""
    n = encoded_vertices(list(params))
    if n is None:
        raise ValueError(f"cell parameters: none of {EDGE_PARAM.format(0)!r}.. or {OP_PARAM.format(0)!r}.. given")
    edges, vertices = param_names(n)
    matrix = [[0] * n for _ in range(n)]
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    for name, (i, j) in zip(edges, pairs):
        value = params[name]
        if isinstance(value, bool) or value in (0, 1):
            matrix[i][j] = int(value)
        else:
            raise ValueError(f"cell parameter {name}={value!r}: rule: 0 or 1 (is there an edge {i} -> {j})")
    return Cell.from_lists(matrix, [INPUT, *(str(params[name]) for name in vertices), OUTPUT])


def cell_params(cell: Cell) -> dict[str, object]:
    """The flat encoding of ``cell`` as given (not pruned): the inverse of :func:`cell_from_params`."""
    edges, vertices = param_names(cell.num_vertices)
    n = cell.num_vertices
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    return {**{name: cell.matrix[i][j] for name, (i, j) in zip(edges, pairs)},
            **{name: op for name, op in zip(vertices, cell.ops[1:-1])}}


# --- counting -----------------------------------------------------------------------------------


def full_dag_matrices(num_vertices: int, max_edges: int = MAX_EDGES) -> np.ndarray:
    """Every upper-triangular matrix with exactly ``num_vertices`` vertices, all on an input -> output
    path (nothing to prune) and at most ``max_edges`` edges: shape (count, n, n), uint8.

    For a DAG in index order "every vertex but the output has an out-edge and every vertex but the
    input an in-edge" is the same as "every vertex lies on an input -> output path".
    """
    n = num_vertices
    rows, cols = np.triu_indices(n, 1)
    shifts = np.arange(rows.size - 1, -1, -1, dtype=np.int32)
    chunk = 1 << 16  # 2^21 masks at once would need ~350 MB
    kept = [np.zeros((0, n, n), dtype=np.uint8)]
    for start in range(0, 1 << rows.size, chunk):
        masks = np.arange(start, min(start + chunk, 1 << rows.size), dtype=np.int32)
        edge_bits = ((masks[:, None] >> shifts) & 1).astype(np.uint8)
        edge_bits = edge_bits[edge_bits.sum(axis=1) <= max_edges]
        matrices = np.zeros((len(edge_bits), n, n), dtype=np.uint8)
        matrices[:, rows, cols] = edge_bits
        full = matrices[:, : n - 1, :].any(axis=2).all(axis=1) & matrices[:, :, 1:].any(axis=1).all(axis=1)
        kept.append(matrices[full])
    return np.concatenate(kept)


def count_unique_with_exactly(num_vertices: int, max_edges: int = MAX_EDGES) -> int:
    """Unique networks (by canonical key) whose pruned cell has exactly ``num_vertices`` vertices."""
    n = num_vertices
    all_labels = np.array(list(itertools.product(range(len(OPS)), repeat=n - 2)), dtype=np.int64).reshape(
        len(OPS) ** (n - 2), n - 2
    )
    by_matrix: dict[int, np.ndarray] = {}
    for matrix in full_dag_matrices(n, max_edges):
        bits, _ = _canonical_keys(matrix, all_labels[:1])
        if bits not in by_matrix:  # one representative per isomorphism class of the bare graph
            by_matrix[bits] = matrix
    # Distinct bare graphs never share a key, so each class's labellings are counted on their own.
    return sum(int(np.unique(_canonical_keys(m, all_labels)[1]).size) for m in by_matrix.values())


def enumerate_unique(num_vertices: int, max_edges: int = MAX_EDGES) -> int:
    """The number of unique valid cells with up to ``num_vertices`` vertices, NAS-Bench-101's convention.

    NAS-Bench-101's ``generate_graphs.py`` sums, for V = 2 .. max_vertices, the full DAGs with
    exactly V vertices and at most ``max_edges`` edges, deduplicated by hash: 423,624 for 7 and 9.
    That equals the number of distinct canonical keys over all valid encodings with exactly
    ``num_vertices`` vertices, since pruning maps those onto the full DAGs with at most that many
    (any smaller full DAG is reached by padding it with dead vertices).
    """
    if num_vertices < 2 or num_vertices > CANONICAL_MAX_VERTICES:
        raise ValueError(f"enumerate_unique num_vertices={num_vertices}: must be between 2 and {CANONICAL_MAX_VERTICES}")
    return sum(count_unique_with_exactly(v, max_edges) for v in range(2, num_vertices + 1))
