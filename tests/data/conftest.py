import pytest

from ppresvar.data import write_cifar_archive


@pytest.fixture(scope="session")
def cifar10_archive(tmp_path_factory):
    return write_cifar_archive(str(tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz"),
                               num_train=60, num_test=20, seed=3)


@pytest.fixture(scope="session")
def cifar100_archive(tmp_path_factory):
    return write_cifar_archive(str(tmp_path_factory.mktemp("cifar100") / "cifar-100-python.tar.gz"),
                               num_train=30, num_test=10, hundred=True, seed=4)
