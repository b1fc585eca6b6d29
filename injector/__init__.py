"""Lifeboat's injector: the mutating admission webhook and the credentials controller."""
