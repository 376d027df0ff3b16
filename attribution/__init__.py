"""verifiable-attribution core library: tasks, subsets, training, execution, commitments.

This package imports neither :mod:`prover` nor :mod:`verifier`.
"""

__version__ = "0.1.0"
