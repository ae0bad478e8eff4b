from .fapn import FaPN

__all__ = ['FaPN']
