"""Training past one device with TensorFlow's own ``tf.distribute`` strategies.

The ``strategy`` parameter picks one of ``STRATEGY_CHOICES``:

- ``"auto"``: a ``TPUStrategy`` when a TPU is attached (TPU devices are visible, as on a
  Colab or Cloud TPU VM, or ``COLAB_TPU_ADDR`` / ``TPU_NAME`` names one); otherwise a
  ``MirroredStrategy`` over all local GPUs when there are two or more; otherwise the
  default strategy (one device). ``"auto"`` never picks ``"multiworker"``: joining a
  cluster has to be asked for.
- ``"default"``: TensorFlow's default strategy: one device, no distribution.
- ``"mirrored"``: ``MirroredStrategy`` over all local GPUs or, without GPUs, over all
  logical CPU devices (one, unless the process split its CPU into several before
  TensorFlow started, as the tests do).
- ``"multiworker"``: ``MultiWorkerMirroredStrategy`` configured from ``$TF_CONFIG`` (one
  process per worker; without ``TF_CONFIG`` it is a cluster of one).
- ``"tpu"``: ``TPUStrategy`` on the attached TPU.

Batch size and learning rate: ``batch_size`` is the **global** batch, split evenly over
the replicas (each of N replicas sees ``batch_size / N`` examples a step), and the
recipe's learning rate is used as is: there is **no learning-rate scaling rule**. One
step of N replicas with global batch B is the same update as one step of one device
with batch B, so a run keeps its meaning when it moves to more devices. If you raise
``batch_size`` to fill more devices, choose ``learning_rate`` for the new batch yourself.

Keras' ``model.fit`` trains under the default, mirrored and TPU strategies. Under
``MultiWorkerMirroredStrategy`` it does not (see :func:`fit_multi_worker`), so that one
strategy has its own small loop here, which reuses the model, optimizer, loss, data
pipeline, history and per-epoch training state of :func:`cifar_cnn.train.fit`.

Only the chief worker (``"chief"``, or worker 0 when the cluster has no chief) writes the
real run folder; the other workers write the same files into a temporary folder that is
deleted afterwards, as TensorFlow's multi-worker guide recommends (every worker must run
every step, saving included, or the collectives would hang).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from cifar_cnn.config import STRATEGY_CHOICES

TF_CONFIG_VARIABLE = "TF_CONFIG"
# Environment variables that name a remote TPU (a Colab "TPU node", a Cloud TPU by name).
_TPU_ADDRESS_VARIABLES = ("COLAB_TPU_ADDR", "TPU_NAME")
# Strategies are process-wide: a TPU system and MultiWorkerMirroredStrategy's collectives
# can only be set up once per process, so every caller shares one instance per choice.
_STRATEGIES: dict = {}


def auto_strategy_name(tpu_attached: bool, gpu_count: int) -> str:
    """The rule behind ``"auto"``: TPU if attached, mirrored over 2+ GPUs, else default.

    Args:
        tpu_attached: Whether a TPU is attached to this machine.
        gpu_count: Number of local GPUs.

    Returns:
        ``"tpu"``, ``"mirrored"`` or ``"default"``.
    """
    if tpu_attached:
        return "tpu"
    return "mirrored" if gpu_count >= 2 else "default"


def _tpu_attached() -> bool:
    import tensorflow as tf

    # Only cheap, local signals: probing for a TPU through the cluster resolver would ask
    # the cloud metadata server, which hangs for a while on machines outside a cloud.
    return bool(tf.config.list_physical_devices("TPU")) or any(
        os.environ.get(name) for name in _TPU_ADDRESS_VARIABLES)


def resolve_strategy_name(name: str) -> str:
    """Turn a strategy choice into a concrete one (``"auto"`` looks at the hardware).

    Args:
        name: One of ``STRATEGY_CHOICES``.

    Returns:
        The same name, or for ``"auto"`` the result of :func:`auto_strategy_name`.
    """
    if name not in STRATEGY_CHOICES:
        raise ValueError(f"Unknown strategy {name!r}; valid choices: "
                         f"{', '.join(STRATEGY_CHOICES)}.")
    if name != "auto":
        return name
    import tensorflow as tf

    return auto_strategy_name(_tpu_attached(), len(tf.config.list_physical_devices("GPU")))


def make_strategy(name: str):
    """Create (once per process) the ``tf.distribute.Strategy`` a strategy choice names.

    ``"multiworker"`` must be created before TensorFlow runs its first operation, so call
    this before building anything (``experiment.build_model`` does it first).

    Args:
        name: One of ``STRATEGY_CHOICES`` (see the module docstring for what each does).

    Returns:
        A ``tf.distribute.Strategy``; the same object for every call with the same choice.
    """
    resolved = resolve_strategy_name(name)
    if resolved not in _STRATEGIES:
        _STRATEGIES[resolved] = _create_strategy(resolved)
    return _STRATEGIES[resolved]


def _create_strategy(resolved: str):
    import tensorflow as tf

    if resolved == "default":
        return tf.distribute.get_strategy()
    if resolved == "mirrored":
        if tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        # MirroredStrategy() alone takes one CPU even when the CPU is split into several
        # logical devices; name them so that such a split really gives several replicas.
        return tf.distribute.MirroredStrategy(
            [device.name for device in tf.config.list_logical_devices("CPU")])
    if resolved == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _create_tpu_strategy()


def _create_tpu_strategy():
    import tensorflow as tf

    local = bool(tf.config.list_physical_devices("TPU"))
    # A TPU VM (Colab's TPU runtime today) has its TPU in this host; a TPU node is remote
    # and the resolver finds it from COLAB_TPU_ADDR or TPU_NAME.
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local" if local else None)
    if not local:
        tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_multi_worker(strategy) -> bool:
    """True for a ``MultiWorkerMirroredStrategy``, which trains with :func:`fit_multi_worker`.

    Args:
        strategy: A ``tf.distribute.Strategy``.

    Returns:
        Whether ``model.fit`` must be avoided for it.
    """
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(environ=None) -> bool:
    """Whether this process is the multi-worker chief, from ``$TF_CONFIG``.

    The chief is the task of type ``"chief"`` or, when the cluster has no chief, worker 0
    (TensorFlow's convention). Without ``TF_CONFIG`` the process is alone, hence chief.

    Args:
        environ: Environment to read (default ``os.environ``).

    Returns:
        True when this process should write the real run folder.
    """
    environ = os.environ if environ is None else environ
    text = environ.get(TF_CONFIG_VARIABLE, "").strip()
    if not text:
        return True
    try:
        tf_config = json.loads(text)
        task = tf_config.get("task", {})
        task_type, task_index = task.get("type"), int(task.get("index", 0))
        cluster = tf_config.get("cluster", {})
    except (ValueError, AttributeError, TypeError) as error:
        raise ValueError(f"{TF_CONFIG_VARIABLE} must be JSON like {{\"cluster\": {{\"worker\": "
                         "[\"host:port\", ...]}, \"task\": {\"type\": \"worker\", \"index\": 0}}, "
                         f"got {text!r} ({error}).") from None
    if task_type == "chief":
        return True
    return task_type == "worker" and task_index == 0 and "chief" not in cluster


# Why a loop of our own: under MultiWorkerMirroredStrategy, Keras 3's model.fit fails with
# "Attempt to convert a value (PerReplica...) to a Tensor" whatever the input
# (keras-team/keras#20585, measured with TensorFlow 2.21 / Keras 3.15), while a step run
# with strategy.run and tf.nn.compute_average_loss on the same Keras model and optimizer
# trains every worker to identical weights. Keep this the only such loop: everything else
# (model, optimizer, loss, pipeline, callbacks, training state) is shared with train.fit.
def fit_multi_worker(model, train_dataset, epochs: int, run_directory: Path, *,
                     resume_directory: Path | None = None, validation_dataset=None,
                     monitor_best: bool = False, extra_callbacks=(), print_epochs: bool = True):
    """Train a model built under ``MultiWorkerMirroredStrategy``, like :func:`train.fit`.

    Every worker runs this with the same arguments. Each epoch runs one distributed step
    per global batch (gradients averaged over every replica of every worker), then the
    validation pass, then the same callbacks as ``train.fit``: ``history.json`` rows,
    atomic per-epoch training state, the epoch line, ``best.keras`` with
    ``monitor_best``, and ``extra_callbacks`` (epoch, batch and train hooks). The steps
    are ``tf.function``s without XLA (``xla`` applies to ``model.fit`` only).

    Args:
        model: A model built and compiled inside the strategy's scope.
        train_dataset: The ``tf.data.Dataset`` of global training batches (the same
            pipeline as ``train.fit`` takes; each worker keeps its share of every batch).
        epochs: Total epochs of the run (a resumed run trains only the rest).
        run_directory: Where this worker writes: the run folder on the chief, a
            temporary folder on the others.
        resume_directory: The run folder whose ``training_state/`` is resumed from: the
            chief's, which every worker must be able to read (shared storage). Default:
            ``run_directory``.
        validation_dataset: Optional dataset evaluated after each epoch.
        monitor_best: Keep ``best.keras`` by ``val_accuracy``.
        extra_callbacks: More Keras callbacks.
        print_epochs: Print one line per epoch.

    Returns:
        A ``cifar_cnn.train.TrainingResult``, as ``train.fit`` returns.
    """
    import keras

    from cifar_cnn import runs, train
    from cifar_cnn.checkpoints import latest_completed_epoch, restore_training_state

    strategy = model.distribute_strategy
    run_directory = Path(run_directory)
    run_directory.mkdir(parents=True, exist_ok=True)
    resume_directory = Path(resume_directory or run_directory)
    state_directory = resume_directory / runs.TRAINING_STATE_FOLDER
    # Agree before restoring: building optimizer slots for a restore runs collectives,
    # which must happen on every worker or on none.
    _require_same_epoch_on_every_worker(strategy, latest_completed_epoch(state_directory))
    with strategy.scope():  # Optimizer slots built for the restore must be distributed too.
        resumed_from = restore_training_state(model, state_directory)
    history_path = run_directory / runs.HISTORY_FILE
    if resumed_from and resume_directory != run_directory \
            and (resume_directory / runs.HISTORY_FILE).is_file():
        # A non-chief worker's history starts from the chief's restored rows, as the chief's.
        shutil.copyfile(resume_directory / runs.HISTORY_FILE, history_path)
    recorder, callbacks = train.run_callbacks(
        run_directory, epochs, resumed_from, extra_callbacks=extra_callbacks,
        monitor_best=monitor_best and validation_dataset is not None, print_epochs=print_epochs)
    if print_epochs and resumed_from:
        print(f"resuming after epoch {resumed_from} from {state_directory}", flush=True)
    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    train_step, test_step = _distributed_steps(model, strategy)
    distributed_train = strategy.experimental_distribute_dataset(train_dataset)
    distributed_validation = (None if validation_dataset is None
                              else strategy.experimental_distribute_dataset(validation_dataset))
    started = time.perf_counter()
    logs: dict = {}
    callback_list.on_train_begin()
    for epoch in range(resumed_from, epochs):
        callback_list.on_epoch_begin(epoch)
        totals = _Totals()
        for step, batch in enumerate(distributed_train):
            callback_list.on_train_batch_begin(step)
            totals.add(train_step(batch))
            callback_list.on_train_batch_end(step)
        logs = totals.logs()
        if distributed_validation is not None:
            callback_list.on_test_begin()
            validation_totals = _Totals()
            for batch in distributed_validation:
                validation_totals.add(test_step(batch))
            callback_list.on_test_end(validation_totals.logs())
            logs.update(validation_totals.logs(prefix="val_"))
        callback_list.on_epoch_end(epoch, logs)
    callback_list.on_train_end(logs)
    return train.TrainingResult(history=recorder.rows, resumed_from_epoch=resumed_from,
                                train_seconds=time.perf_counter() - started)


def _require_same_epoch_on_every_worker(strategy, completed_epochs: int) -> None:
    """Stop every worker with a clear error when they would resume from different epochs.

    A worker that cannot see the chief's run folder (no shared storage) would start at
    epoch 0 while the others resume, and their collectives would no longer match. Every
    worker sums ``epochs`` and ``epochs**2`` over all replicas: the values agree exactly
    when ``replicas * sum(epochs**2) == sum(epochs)**2`` (zero variance), and every
    worker sees the same sums, so all of them raise together or none does.
    """
    import tensorflow as tf

    value = tf.constant([completed_epochs, completed_epochs ** 2], dtype=tf.int64)
    sums = strategy.reduce("SUM", strategy.run(lambda: tf.identity(value)), axis=None).numpy()
    replicas = strategy.num_replicas_in_sync
    if replicas * int(sums[1]) != int(sums[0]) ** 2:
        raise ValueError(
            f"Workers found training states of different epochs (this one: {completed_epochs}; "
            f"mean over replicas: {sums[0] / replicas:.2f}). Every worker resumes from the "
            "chief's run folder: put output_dir on storage that all workers share.")


def _distributed_steps(model, strategy):
    """One training step and one evaluation step, each run on every replica.

    Each returns ``(loss sum, correct predictions, examples)`` summed over all replicas
    of all workers, from which the epoch's mean loss and accuracy follow exactly as
    ``model.fit`` reports them (per-example means over the epoch).
    """
    import tensorflow as tf

    per_example_loss = _per_example_loss(model.loss)
    optimizer = model.optimizer

    def batch_totals(labels, probabilities, losses, extra_loss=0.0):
        correct = tf.equal(tf.argmax(probabilities, axis=-1, output_type=tf.int32),
                           tf.cast(tf.reshape(labels, [-1]), tf.int32))
        count = tf.cast(tf.shape(losses)[0], tf.float32)
        return (tf.reduce_sum(losses) + extra_loss * count,
                tf.reduce_sum(tf.cast(correct, tf.float32)), count)

    def replica_train_step(images, labels):
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            losses = tf.cast(per_example_loss(labels, probabilities), tf.float32)
            # Sum over this replica divided by the global batch: the optimizer then sums the
            # replicas' gradients, which averages them over the global batch, as model.fit
            # does with its per-replica mean divided by the replica count.
            loss = tf.nn.compute_average_loss(losses)
            regularization = tf.add_n(model.losses) if model.losses else tf.constant(0.0)
            loss += tf.nn.scale_regularization_loss(regularization)
            scaled_loss = optimizer.scale_loss(loss)  # Loss scaling under mixed_float16.
        gradients = tape.gradient(scaled_loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return batch_totals(labels, probabilities, losses, regularization)

    def replica_test_step(images, labels):
        probabilities = model(images, training=False)
        losses = tf.cast(per_example_loss(labels, probabilities), tf.float32)
        return batch_totals(labels, probabilities, losses)

    def summed_over_replicas(replica_step):
        @tf.function
        def step(batch):
            per_replica = strategy.run(replica_step, args=batch)
            return [strategy.reduce("SUM", value, axis=None) for value in per_replica]

        return step

    return summed_over_replicas(replica_train_step), summed_over_replicas(replica_test_step)


def _per_example_loss(loss):
    """The compiled loss without its batch reduction (``train.make_loss`` builds it)."""
    import keras

    if not isinstance(loss, keras.losses.Loss):
        raise ValueError(f"The multi-worker loop needs a keras.losses.Loss (as "
                         f"train.make_loss returns), got {loss!r}.")
    return loss.call  # Loss.call is the per-example loss; __call__ would average it.


class _Totals:
    """Running sums of loss, correct predictions and examples over an epoch."""

    def __init__(self):
        self.loss = self.correct = self.examples = 0.0

    def add(self, step_totals) -> None:
        loss, correct, examples = (float(value) for value in step_totals)
        self.loss += loss
        self.correct += correct
        self.examples += examples

    def logs(self, prefix: str = "") -> dict:
        examples = max(self.examples, 1.0)
        return {f"{prefix}loss": self.loss / examples, f"{prefix}accuracy": self.correct / examples}


__all__ = ["STRATEGY_CHOICES", "auto_strategy_name", "fit_multi_worker", "is_chief",
           "is_multi_worker", "make_strategy", "resolve_strategy_name"]
