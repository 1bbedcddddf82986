"""The one exception policy: TypeError for a type, ValueError for a value."""

import math
import pathlib

import pytest

from kerasft._src import validation as v


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: v.check_int("epochs", True, minimum=1), TypeError, "bool"),
        (lambda: v.check_int("epochs", 2.5, minimum=1), TypeError, "float"),
        (lambda: v.check_int("epochs", 0, minimum=1), ValueError, ">= 1"),
        (lambda: v.check_int("n", 9, maximum=8), ValueError, "<= 8"),
        (lambda: v.check_number("lr", "1e-3"), TypeError, "str"),
        (lambda: v.check_number("lr", False), TypeError, "bool"),
        (lambda: v.check_number("lr", math.nan), ValueError, "finite"),
        (lambda: v.check_number("lr", math.inf), ValueError, "finite"),
        (
            lambda: v.check_number("lr", 0, minimum=0, min_inclusive=False),
            ValueError,
            "> 0",
        ),
        (
            lambda: v.check_number("p", 1.0, maximum=1, max_inclusive=False),
            ValueError,
            "< 1",
        ),
        (lambda: v.check_bool("flag", 1), TypeError, "True or False"),
        (lambda: v.check_choice("bn", "froze", ("frozen",)), ValueError, ""),
        (lambda: v.check_choice("bn", [], ("frozen",)), ValueError, ""),
        (lambda: v.check_type("m", 3, str, "a str"), TypeError, "a str"),
        (lambda: v.check_type("m", True, int, "an int"), TypeError, "int"),
        (lambda: v.check_callable("print_fn", 42), TypeError, "callable"),
        (lambda: v.check_path("path", None), TypeError, "path"),
        (lambda: v.check_path("path", ""), ValueError, "non-empty"),
        (lambda: v.check_path("path", "a\x00b"), ValueError, "NUL"),
        (lambda: v.check_path("path", b"x"), TypeError, "path"),
    ],
)
def test_bad_values_raise_with_received(call, error, message):
    with pytest.raises(error, match="Received: ") as info:
        call()
    assert message in str(info.value)


def test_good_values_come_back_plain():
    assert v.check_int("epochs", 3, minimum=1) == 3
    assert v.check_int("epochs", None, allow_none=True) is None
    assert v.check_number("lr", 1, minimum=0, min_inclusive=False) == 1.0
    assert isinstance(v.check_number("lr", 1), float)
    assert v.check_bool("flag", False) is False
    assert v.check_choice("bn", "frozen", ("frozen", "train")) == "frozen"
    assert v.check_type("m", 3, int, "an int") == 3
    assert v.check_callable("f", print) is print
    assert v.check_path("p", pathlib.Path("a/b")) == "a/b"


def test_choice_suggests_the_closest_name():
    with pytest.raises(ValueError, match="Did you mean 'frozen'"):
        v.check_choice("bn", "froze", ("frozen", "train", "follow"))
