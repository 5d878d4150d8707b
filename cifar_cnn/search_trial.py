"""A run that is a trial of a search: how its kernel learns of the trial, and how it stops.

The search process starts each trial's notebook with ``$CIFAR_CNN_SEARCH_TRIAL`` set to a
small JSON object (storage, study, trial, pruner). The run's parameters and config do not
change: a trial is an ordinary run that also reports, after every epoch, its monitored
accuracy to its trial (``training_callbacks.TrialReporter``). When the pruner says stop,
training ends with that epoch, the run folder records ``pruned``
(:meth:`cifar_cnn.runs.RunFolder.prune`) and :class:`RunPruned` ends the notebook there, so
no time goes to evaluating a run that will not be used.

Imports nothing heavy: the search process uses it too.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Mapping

TRIAL_VARIABLE = "CIFAR_CNN_SEARCH_TRIAL"


class RunPruned(Exception):
    """The run's search pruned it: training stopped early on purpose, the run is final."""


@dataclass(frozen=True)
class TrialConnection:
    """What a trial's kernel needs to report to its trial.

    Attributes:
        storage: The study's storage (journal file path or database URL).
        study: The study's name.
        trial_id: The trial's id in the storage.
        trial_number: The trial's number in the study (for messages).
        pruner: The pruner's settings (``search_spec.make_pruner``).
    """

    storage: str
    study: str
    trial_id: int
    trial_number: int
    pruner: dict[str, Any]

    def environment(self) -> dict[str, str]:
        """The variable that hands this connection to the trial's process."""
        return {TRIAL_VARIABLE: json.dumps(asdict(self))}

    def open_trial(self):
        """Load the study and return the ``optuna.trial.Trial`` to report to.

        Returns:
            The trial.
        """
        import optuna

        from cifar_cnn.search_spec import make_pruner
        from cifar_cnn.search_storage import open_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # The epoch line says enough.
        study = optuna.load_study(study_name=self.study, storage=open_storage(self.storage),
                                  pruner=make_pruner(self.pruner))
        return optuna.trial.Trial(study, self.trial_id)


def connection_from_environment(environ: Mapping[str, str] | None = None) -> TrialConnection | None:
    """The trial this process's run reports to, or None when it is not a search's trial.

    Args:
        environ: The environment (default: ``os.environ``).

    Returns:
        The :class:`TrialConnection`, or None.
    """
    text = (os.environ if environ is None else environ).get(TRIAL_VARIABLE)
    if not text:
        return None
    try:
        fields = json.loads(text)
        return TrialConnection(storage=str(fields["storage"]), study=str(fields["study"]),
                               trial_id=int(fields["trial_id"]),
                               trial_number=int(fields["trial_number"]),
                               pruner=dict(fields["pruner"]))
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"${TRIAL_VARIABLE} does not describe a search trial ({error}); "
                         "it is set by cifar-cnn search, unset it to run on its own.") from None
