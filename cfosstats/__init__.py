"""cfosstats: is a treatment effect measured by deep-learning segmentation objective, reliable and valid?

Implements the analyses of Segebarth et al., eLife 2020 ("On the objectivity, reliability, and
validity of deep learning enabled bioimage analyses") for one lab at a time.
"""

from cfosstats.core.version import __version__

__all__ = ["__version__"]
