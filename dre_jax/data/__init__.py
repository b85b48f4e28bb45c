"""Data of the paper's experiments (Sec. 5): CUB-200-2011, ImageNet, Places365.

* `pipelines`: TFDS + tf.data input pipelines giving numpy batches, for
  training and evaluation, with box masks and segmentations where the dataset
  has them; `make_dataset`, `num_examples`, `steps_per_epoch`.
* `folder`: a folder of unlabeled photos read as the dataset `folder`
  (`data_dir` = the folder or a glob), for training DRE on a user's photos.
* `gcompris`: GCompris's photos (Debian's gcompris-qt-data) written as such a
  folder, from its Qt resource files.
* `transforms`: the resize/crop/flip geometry shared by images, masks, boxes.
* `imagenet_boxes`: the ILSVRC2012 validation bounding-box XML reader.
"""

from dre_jax import extras

extras.require("dre_jax.data", "tensorflow", "tensorflow_datasets")

# pylint: disable=wrong-import-position
from dre_jax.data.pipelines import DatasetNotPreparedError
from dre_jax.data.pipelines import local_batch_size
from dre_jax.data.pipelines import make_dataset
from dre_jax.data.pipelines import make_tf_dataset
from dre_jax.data.pipelines import num_examples
from dre_jax.data.pipelines import steps_per_epoch
