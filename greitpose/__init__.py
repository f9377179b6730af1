"""greitpose: 2D multi-person pose estimation with Greit-HRNet."""

__version__ = "0.1.0"
