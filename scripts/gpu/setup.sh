#!/bin/bash
# Sourced on the lent GPU from the source root: installs the carried pure-Python
# wheels (ml_collections, clu, captum; flax 0.12.8 only if the image's flax is
# older than the project's floor) into /tmp/site and sets PYTHONPATH.
#   source scripts/gpu/setup.sh [WHEEL_DIR]   (default ../whl; the flax wheel in WHEEL_DIR_flax)
WHL=${1:-../whl}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target /tmp/site "$WHL"/*.whl || return 1
if ! python3 -c "import flax, sys; v = tuple(int(x) for x in flax.__version__.split('.')[:3]); sys.exit(v < (0, 12, 8))"; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site "${WHL%/}_flax"/*.whl || return 1
fi
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1
python3 -c "import jax, flax, optax, orbax.checkpoint as o, torch, torchvision, captum, ml_collections, clu; print('versions: jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'orbax', o.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__, 'captum', captum.__version__, 'devices', jax.devices())"
