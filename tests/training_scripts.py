"""Source code for training subprocesses that tests start and then SIGKILL mid-epoch.

Shared by the kill-and-resume and the multi-worker tests: both need a child process that
trains with ``run_experiment`` and, when asked through an environment variable, holds still
right after the first step of epoch 2, so that the kill lands mid-epoch every time.
"""

SUBPROCESS_TIMEOUT = 180
PAUSE_VARIABLE = "CIFAR_CNN_TEST_PAUSE_IN_EPOCH_2"

SCRIPT_PRELUDE = f'''
import json, os, sys, time

import keras
import numpy as np

from cifar_cnn.config import RunConfig
from cifar_cnn.experiment import run_experiment


class PauseAfterFirstStepOfEpoch2(keras.callbacks.Callback):
    """Hold still mid-epoch so that the test can SIGKILL the process there."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 0:
            print("paused in epoch 2", flush=True)
            time.sleep({SUBPROCESS_TIMEOUT})  # Bounded: the process ends even if nobody kills it.


pause = [PauseAfterFirstStepOfEpoch2()] if os.environ.get("{PAUSE_VARIABLE}") else []
'''
