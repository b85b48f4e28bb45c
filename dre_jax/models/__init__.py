"""Classifiers with feature taps; see `registry` for the interface."""

from dre_jax.models import registry
from dre_jax.models import tiny  # noqa: F401  (registers "tiny_cnn")
from dre_jax.models import efficientnet_lite  # noqa: F401  (registers "efficientnet_lite0")
from dre_jax.models import googlenet  # noqa: F401  (registers "googlenet")
from dre_jax.models import resnet  # noqa: F401  (registers "resnet18/34/50/101")
from dre_jax.models import vgg  # noqa: F401  (registers "vgg19")

get = registry.get
names = registry.names
ClassifierSpec = registry.ClassifierSpec
