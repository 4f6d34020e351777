"""simclr_lib: the library behind the simclr-course notebooks.

SimCLR (Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020) in small, tested modules: ``data``, ``augment``, ``models``,
``loss``, ``optim``, ``train``, ``evaluate``, ``plots``, ``widgets``, and ``colab`` (the
notebooks' install on Colab). See DESIGN.md.

Importing the package sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set already. PyTorch's
CPU threads (GNU OpenMP) otherwise spin while they wait for work; on a machine whose cores
are busy with anything else, spinning threads steal each other's time, and a training step
on 2 threads ran 4x slower than on 1 (benchmarks/RESULTS.md). OpenMP reads the variable
once, when PyTorch loads it, so this helps only where ``simclr_lib`` is imported before
``torch`` (the command line, ``python -m simclr_lib``); the Makefile sets it for notebooks.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
