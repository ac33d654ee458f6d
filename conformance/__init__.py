"""autograd-conformance: a property-based conformance suite for reverse-mode autodiff.

Rules live as data in ``specs/``; ``pytest conformance --backend=NAME`` checks an engine
against them through an adapter (see ``conformance.backends.protocol``).
"""

__version__ = "0.1.0"
