"""platonic: compare the latent spaces of machine-learned interatomic potentials in a shared anchor space."""

__version__ = "0.1.0"
