"""simclr_lib: the library behind the simclr-course notebooks.

SimCLR (Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020) in small, tested modules: ``data``, ``augment``, ``models``,
``loss``, ``optim``, ``train``, ``evaluate``, ``plots``, ``widgets``, and ``colab`` (the
notebooks' install on Colab). See DESIGN.md.
"""

__version__ = "0.1.0"
