import pyg_wsss
import pyg_wsss.data as data


def test_lazy_names_resolve():
    for name in data.__all__:
        assert getattr(data, name) is not None
    assert "SyntheticWSSS" in dir(data)
    assert pyg_wsss.data is data


def test_unknown_name():
    import pytest

    with pytest.raises(AttributeError):
        data.NoSuchThing
