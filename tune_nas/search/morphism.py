"""Network morphism (Chen et al., ICLR 2016; Wei et al., ICML 2016; AutoKeras): children grow from trained parents.

Every other searcher trains each trial from scratch. Here, after ``seed_trials`` trials that
train the space's own (small) architectures from scratch, every new trial is the child of a
finished one: a tournament of ``sample_size`` COMPLETE trials (drawn uniformly, the best by the
objective wins; the younger on a tie) picks the parent, one or two (``max_morphs``) random
function-preserving transforms of its architecture — widen a layer (or, opted in, every layer),
insert a layer, add a skip, grow a kernel (:func:`tune_nas.spaces.morph_spec.random_morph`, within ``max_layers``,
``max_channels``, ``max_kernel``) — give the child's, and the child starts from the parent's
trained weights, morphed, for ``child_epochs`` epochs instead of the full budget. The child
keeps its parent's training hyperparameters.

What a child gets (through the Optuna system attribute
:data:`~tune_nas.search.registry.CONFIG_ATTR`, merged into its config by the Ray layer):
``arch`` (the child's architecture, the model's argument) and ``warm_start`` (parent number,
parent architecture, the parent's checkpoint directory, the morphs, ``child_epochs``; see
:mod:`tune_nas.trial.warm_start`). Its lineage is in its user attributes: ``parent`` and
``morphs`` (readable descriptions). A parent must be COMPLETE with a recorded ``checkpoint``
and ``arch`` (user attributes the Ray layer sets when a trial ends); before there is one,
trials are seed trials. Everything is rebuilt from the study, so a resumed search keeps its
lineage.

The model must be morphable (``morph_net``). Options (``searcher_options``): ``seed_trials``
(int >= 1, default 4), ``sample_size`` (int >= 1, default 3), ``max_morphs`` (1 or more,
default 2: each child draws 1 .. max_morphs), ``child_epochs`` (int >= 1, default 2),
``max_layers`` (default 8), ``max_channels`` (default 128), ``max_kernel`` (default 7),
``child_lr_scale`` (float in (0, 1], default :data:`CHILD_LR_SCALE`: a child's learning rate is
its parent's times this), ``child_warmup_epochs`` (a number >= 0: a child's linear warm-up of
the learning rate, in epochs, before its schedule; default: its parent's ``warmup_epochs`` —
a child's AdamW starts with empty moments), ``ops`` (the transforms drawn, default
:data:`~tune_nas.spaces.morph_spec.DEFAULT_OPS`: ``widen``, ``deepen``, ``skip``, ``kernel``;
``widen_all`` — every layer widened at once — is opt-in).
Single-objective studies only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tune_nas.objectives import is_number
from tune_nas.search.registry import CONFIG_ATTR, SearcherError, SearcherSettings
from tune_nas.spaces.morph_spec import (
    DEFAULT_OPS,
    OPS_RULE,
    MorphLimits,
    MorphSpec,
    apply_to_spec,
    describe,
    random_morph,
    valid_ops,
)

#: A child fine-tunes trained weights: its learning rate is its parent's times this (Net2Net's
#: students train at a lower rate than their teachers; at the parent's full rate a child's first
#: epoch lost 3-4 accuracy points of its warm start in 19-21 of 21 children on digits).
CHILD_LR_SCALE = 0.3
#: User attributes of a child: its parent's trial number and its transforms (descriptions).
PARENT_ATTR, MORPHS_ATTR = "parent", "morphs"
#: System attribute of every trial the sampler has decided: ``"seed"`` or ``"child"``. Optuna
#: calls ``before_trial`` whenever a ``Trial`` object is made for a stored trial, and Ray's
#: searcher makes one for each of its trials when a search resumes: a trial decided when it was
#: asked (or finished) must keep its lineage, not get a new parent (or fail, being finished).
DECIDED_ATTR = "tune_nas:morphism"


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def create_sampler(settings: SearcherSettings):
    names = ("seed_trials", "sample_size", "max_morphs", "child_epochs", "max_layers", "max_channels", "max_kernel")
    settings.check_known("morphism", (*names, "child_lr_scale", "child_warmup_epochs", "ops"))
    settings.check_single_objective("morphism")
    ops = settings.take("ops", list(DEFAULT_OPS), valid_ops, OPS_RULE)
    lr_scale = settings.take("child_lr_scale", CHILD_LR_SCALE, lambda v: isinstance(v, (int, float))
                             and not isinstance(v, bool) and 0 < v <= 1, "a number in (0, 1]")
    warmup = settings.take("child_warmup_epochs", None, lambda v: v is None or (is_number(v) and v >= 0),
                           "a finite number >= 0")
    values = {}
    for name, default in zip(names, (4, 3, 2, 2, 8, 128, 7)):
        values[name] = settings.take(name, default, _positive_int, "an integer >= 1")
    if values["max_kernel"] % 2 == 0:
        raise SearcherError(f"searcher_options['max_kernel']={values['max_kernel']}: rule: an odd integer (a kernel keeps "
                            "the image size with 'same' padding)")
    limits = MorphLimits(max_layers=values.pop("max_layers"), max_channels=values.pop("max_channels"),
                         max_kernel=values.pop("max_kernel"), ops=tuple(dict.fromkeys(ops)))
    return MorphismSampler(limits=limits, seed=settings.seed, child_lr_scale=float(lr_scale),
                           child_warmup_epochs=None if warmup is None else float(warmup), **values)


def is_parent(trial: FrozenTrial) -> bool:
    """A trial a child may start from: COMPLETE, with its architecture and checkpoint recorded."""
    attrs = trial.user_attrs
    return trial.state == TrialState.COMPLETE and bool(attrs.get("checkpoint")) and bool(attrs.get("arch"))


class MorphismSampler(BaseSampler):
    """Seed trials at random, then children of tournament-selected parents (see the module docstring)."""

    def __init__(self, limits: MorphLimits | None = None, seed_trials: int = 4, sample_size: int = 3,
                 max_morphs: int = 2, child_epochs: int = 2, seed: int | None = None,
                 child_lr_scale: float = 1.0, child_warmup_epochs: float | None = None) -> None:
        self.limits = limits or MorphLimits()
        self.child_lr_scale, self.child_warmup_epochs = child_lr_scale, child_warmup_epochs
        self.seed_trials, self.sample_size = seed_trials, sample_size
        self.max_morphs, self.child_epochs = max_morphs, child_epochs
        self._seed = seed
        self._random = RandomSampler(seed=seed)
        self._parents: dict[int, FrozenTrial] = {}  # trial number -> its parent (this process)

    # ----- Optuna's sampler protocol -----
    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        """Choose the trial's parent and morphs (or none: a seed trial) and hand them over; once
        per trial (see :data:`DECIDED_ATTR`)."""
        if trial.state.is_finished() or DECIDED_ATTR in trial.system_attrs:
            return
        storage = study._storage
        parents = [t for t in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                   if is_parent(t)] if trial.number >= self.seed_trials else []
        if not parents:
            storage.set_trial_system_attr(trial._trial_id, DECIDED_ATTR, "seed")
            return
        rng = np.random.RandomState(_child_seed(self._seed, trial.number))
        parent = self.select_parent(parents, study.direction, rng)
        spec = MorphSpec.from_json(parent.user_attrs["arch"])
        morphs = []
        for _ in range(int(rng.randint(1, self.max_morphs + 1))):
            morph = random_morph(spec, rng, self.limits)
            if morph is None:  # nothing left to grow within the limits
                break
            morphs.append(morph)
            spec = apply_to_spec(spec, morph)
        warm = {"parent": parent.number, "parent_arch": parent.user_attrs["arch"],
                "checkpoint": parent.user_attrs["checkpoint"], "morphs": morphs,
                "epochs": self.child_epochs, "lr_scale": self.child_lr_scale}
        if self.child_warmup_epochs is not None:
            warm["warmup_epochs"] = self.child_warmup_epochs
        storage.set_trial_system_attr(trial._trial_id, CONFIG_ATTR, {"arch": spec.to_json(), "warm_start": warm})
        storage.set_trial_user_attr(trial._trial_id, PARENT_ATTR, parent.number)
        storage.set_trial_user_attr(trial._trial_id, MORPHS_ATTR, [describe(m) for m in morphs])
        storage.set_trial_system_attr(trial._trial_id, DECIDED_ATTR, "child")
        self._parents[trial.number] = parent

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        parent = self._parent_of(study, trial)
        return dict(parent.distributions) if parent is not None else {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """A child keeps its parent's hyperparameters."""
        parent = self._parent_of(study, trial)
        return {k: v for k, v in parent.params.items() if k in search_space} if parent is not None else {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._parents.pop(trial.number, None)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    # ----- the algorithm -----
    def select_parent(self, parents: Sequence[FrozenTrial], direction: StudyDirection,
                      rng: np.random.RandomState) -> FrozenTrial:
        """The best of ``sample_size`` parents drawn without replacement (ties: the younger)."""
        sign = 1.0 if direction == StudyDirection.MAXIMIZE else -1.0
        size = min(self.sample_size, len(parents))
        picked = [parents[i] for i in rng.choice(len(parents), size=size, replace=False)]
        return max(picked, key=lambda t: (sign * float(t.value), t.number))

    def _parent_of(self, study: Study, trial: FrozenTrial) -> FrozenTrial | None:
        if trial.number in self._parents:
            return self._parents[trial.number]
        number = trial.user_attrs.get(PARENT_ATTR)
        if number is None:
            return None
        return study._storage.get_trial(study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number))


def _child_seed(seed: int | None, number: int) -> int:
    """A child's own random stream: the same child for the same study seed and trial number."""
    return int(np.random.SeedSequence([0 if seed is None else seed, number]).generate_state(1)[0])
