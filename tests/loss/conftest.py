import pytest

from tests.loss.weights_files import make_vgg_files


@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory):
    """A random keras.applications VGG19 notop, saved in both accepted formats."""
    return make_vgg_files(tmp_path_factory.mktemp("vgg"))
