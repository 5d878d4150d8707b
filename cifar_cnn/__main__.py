"""``python -m cifar_cnn``: the same as the ``cifar-cnn`` command."""

import sys

from cifar_cnn.cli import main

sys.exit(main())
