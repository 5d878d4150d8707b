"""cifar_cnn: convolutional networks on CIFAR-10 with TensorFlow 2 and Keras 3.

The package is a thin library that the notebooks in ``notebooks/`` call step by step:

- :mod:`cifar_cnn.config`: the run configuration, validated before any work starts;
- :mod:`cifar_cnn.data`: CIFAR-10 from any supported source, cached, split and batched;
- :mod:`cifar_cnn.models`: named model builders and their registry;
- :mod:`cifar_cnn.train`: ``model.fit`` with callbacks that record, checkpoint and resume;
- :mod:`cifar_cnn.evaluate`: accuracy, per-class accuracy, confusion matrix, predictions;
- :mod:`cifar_cnn.plots`: matplotlib figures built from arrays.

Importing the package is cheap: nothing is downloaded, loaded or built at import time.
"""

__version__ = "0.1.0"
