"""Model engines: each kind behind one abstract class, picked from a registry."""
