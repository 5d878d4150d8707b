"""cifar_cnn: convolutional networks on CIFAR-10 with TensorFlow 2 and Keras 3.

The package is a thin library that the notebooks in ``notebooks/`` call step by step. Each
concept has one home:

- :mod:`cifar_cnn.config`: the run configuration (the notebook's parameters) and every valid
  choice, validated before any work starts;
- :mod:`cifar_cnn.runs`: the run folder: its file names, status words, place and writer;
  :mod:`cifar_cnn.run_catalog` reads runs back, :mod:`cifar_cnn.run_reuse` is the rule for
  reusing a folder, :mod:`cifar_cnn.provenance` the commit, versions and machine of a run;
- :mod:`cifar_cnn.experiment`: the steps of one run, shared by the notebook, the command line,
  sweeps and benchmarks;
- :mod:`cifar_cnn.data`: CIFAR-10 from any supported source, bounded, cached, split, batched;
- :mod:`cifar_cnn.models`, :mod:`cifar_cnn.recipes`: named networks and training recipes;
- :mod:`cifar_cnn.train`: ``model.fit`` with callbacks that record, checkpoint and resume;
- :mod:`cifar_cnn.evaluate`: predictions, accuracy, confusion matrix, saved-model evaluation;
- :mod:`cifar_cnn.plots`: every figure, as matplotlib Figures built from arrays;
- :mod:`cifar_cnn.cli`: the ``cifar-cnn`` command line, one module per command.

Importing the package is cheap: nothing is downloaded, loaded or built at import time. It
does one thing before TensorFlow loads: it asks for TensorFlow's oneDNN CPU kernels where
TensorFlow would leave them off (:mod:`cifar_cnn.cpu_kernels` says why and when).
"""

from cifar_cnn.cpu_kernels import prefer_onednn

__version__ = "0.1.0"

prefer_onednn()
