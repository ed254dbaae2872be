"""Backends that run an ``IntegerNetwork``: reference, emulator, Lava, Brian2 (see ``registry``)."""
