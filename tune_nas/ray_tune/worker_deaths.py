"""A trial whose worker Ray kills (its memory monitor, a crashed worker, a lost node) fails
alone, as any crashed trial does, instead of ending the whole search.

Ray Tune 2.60's actor manager (``RayActorManager._actor_task_failed`` in
``ray.air.execution._internal.actor_manager``) knows two ways a trial's pending task can fail:
the task raised (``RayTaskError``) or the trial's actor died (``RayActorError``). When Ray's
memory monitor kills a trial's worker while one of its tasks is pending, the task's future
raises ``ray.exceptions.OutOfMemoryError``, which is neither: Tune raises ``RuntimeError("Caught
unexpected exception ...")`` out of ``Tuner.fit`` and the search ends with a traceback, every
running trial with it (measured: a second process filling the node's memory ended a 24-trial
search after its first trial). Within :func:`worker_deaths_fail_trials` those errors reach
Tune as what they mean, the death of the trial's actor: a ``RayActorError`` carrying the
original message, so the trial fails with that message as its reason and retries from its
last checkpoint up to ``max_failures``, like a trial whose worker crashed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ray import exceptions

#: Errors of a pending task that mean its worker process is gone (those Ray 2.60 raises for
#: a task it killed or lost; the tuple holds the ones this Ray has).
WORKER_GONE = tuple(getattr(exceptions, name) for name in ("OutOfMemoryError", "WorkerCrashedError", "NodeDiedError")
                    if hasattr(exceptions, name))


def as_actor_death(error: BaseException) -> BaseException:
    """``error`` as Tune's actor manager can take it: an error in :data:`WORKER_GONE` becomes
    a ``RayActorError`` whose message is ``"<type>: <message>"``; any other is returned as it is."""
    if isinstance(error, WORKER_GONE) and not isinstance(error, (exceptions.RayActorError, exceptions.RayTaskError)):
        death = exceptions.RayActorError(error_msg=f"{type(error).__name__}: {error}")
        death.__cause__ = error
        return death
    return error


@contextlib.contextmanager
def worker_deaths_fail_trials() -> Iterator[None]:
    """Within the block, Tune's actor manager hands a task error in :data:`WORKER_GONE` on as
    the death of the task's actor (:func:`as_actor_death`). Ray versions without that method
    run unchanged."""
    try:
        from ray.air.execution._internal.actor_manager import RayActorManager
    except ImportError:  # another Ray layout: nothing to adapt
        yield
        return
    original = getattr(RayActorManager, "_actor_task_failed", None)
    if original is None:
        yield
        return

    def _actor_task_failed(self, tracked_actor_task, exception):
        return original(self, tracked_actor_task, as_actor_death(exception))

    RayActorManager._actor_task_failed = _actor_task_failed
    try:
        yield
    finally:
        RayActorManager._actor_task_failed = original
